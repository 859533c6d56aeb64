import Foundation

/// Pauses between retries of something Redis could not do: `first` seconds, doubling up to
/// `max`, each drawn with jitter between half and the whole step so that many loops do not
/// retry in step; `reset()` once it worked.
struct Backoff {
    let first: Double
    let max: Double
    private var step: Double

    init(first: Double, max: Double) {
        self.first = first
        self.max = max
        self.step = first
    }

    /// The step the next pause is drawn from.
    var peek: Double { step }

    /// The pause to take now; the next one is twice as long (up to `max`).
    mutating func next() -> Double {
        let pause = Double.random(in: (step / 2)...step)
        step = min(max, step * 2)
        return pause
    }

    mutating func reset() { step = first }
}
