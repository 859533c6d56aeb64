import Foundation

/// Pauses between retries of something Redis could not do: `first` seconds, doubling up to
/// `max`, each drawn with jitter between half and the whole step so that many loops do not
/// retry in step; `reset()` once it worked. The one backoff of the package: reconnects,
/// the daemon's loops and the CLI's followers all use it.
public struct Backoff: Sendable {
    public let first: Double
    public let max: Double
    private var step: Double

    public init(first: Double, max: Double) {
        self.first = first
        self.max = max
        self.step = first
    }

    /// The step the next pause is drawn from.
    public var peek: Double { step }

    /// The pause to take now; the next one is twice as long (up to `max`).
    public mutating func next() -> Double {
        let pause = Self.jittered(step)
        step = Swift.min(max, step * 2)
        return pause
    }

    /// A pause drawn between half of `step` and the whole of it.
    public static func jittered(_ step: Double) -> Double {
        Double.random(in: (step / 2)...Swift.max(step, step / 2 + 1e-6))
    }

    public mutating func reset() { step = first }

    /// The pause after `count` failures in a row, without jitter: `first`, doubling, at most
    /// `max`. For a pause that must be known in advance (a plan's next try is a time, not a
    /// sleep) or that many callers need not spread.
    public static func pause(after count: Int, first: Double, max: Double) -> Double {
        Swift.min(max, first * pow(2, Double(Swift.min(count, 16) - 1)))
    }
}
