import Foundation

/// Who has the machine while tests run in parallel: up to `width` tests that share it, or one
/// test alone (one that blocks every thread of the cooperative pool, say, which would stall or
/// be stalled by any test beside it). A test that waits to be alone lets sharing tests go
/// first: it runs once none is left (at the latest, at the end of the run), so the machine is
/// never drained for it while other tests wait. Sharing tests are let in first come, first
/// served.
///
/// At most `width` tests share the machine at once: most of a test's time is spent waiting on
/// Redis, daemons and child processes, so a few times as many tests as cores keep the cores
/// busy, while more would only stretch each test's waits toward its timeouts.
/// `COORD_TEST_WIDTH` sets the width (1: one test at a time).
///
/// Waiting suspends (it never blocks a thread), so a test waiting here holds no thread of the
/// pool that the tests it waits for need.
public actor MachineGate {
    public static let shared = MachineGate(
        width: ProcessInfo.processInfo.environment["COORD_TEST_WIDTH"].flatMap { Int($0) }.map { max(1, $0) }
            ?? max(4, 3 * ProcessInfo.processInfo.activeProcessorCount))

    public let width: Int
    private var sharing = 0
    private var alone = false
    private var waiting: [(alone: Bool, continuation: CheckedContinuation<Void, Never>)] = []

    public init(width: Int) {
        self.width = width
    }

    /// Tests sharing the machine, whether one has it alone, and how many wait (for tests of
    /// the gate itself).
    public var state: (sharing: Int, alone: Bool, waiting: Int) { (sharing, alone, waiting.count) }

    /// Returns once the caller has the machine: alone, or shared with other sharing tests.
    public func enter(alone wantsAlone: Bool) async {
        if admits(alone: wantsAlone) && (wantsAlone || !waiting.contains { !$0.alone }) {
            take(alone: wantsAlone)
            return
        }
        await withCheckedContinuation { waiting.append((wantsAlone, $0)) }
    }

    /// Gives back what `enter(alone:)` took, and lets in the waiters that now can come: sharing
    /// ones in order, then, when none is left, one that waits to be alone.
    public func leave(alone wasAlone: Bool) {
        if wasAlone { alone = false } else { sharing -= 1 }
        while let index = waiting.firstIndex(where: { !$0.alone }), admits(alone: false) {
            admit(waiting.remove(at: index))
        }
        if let index = waiting.firstIndex(where: { $0.alone }), admits(alone: true), !waiting.contains(where: { !$0.alone }) {
            admit(waiting.remove(at: index))
        }
    }

    private func admit(_ waiter: (alone: Bool, continuation: CheckedContinuation<Void, Never>)) {
        take(alone: waiter.alone)
        waiter.continuation.resume()
    }

    private func admits(alone wantsAlone: Bool) -> Bool {
        wantsAlone ? !alone && sharing == 0 : !alone && sharing < width
    }

    private func take(alone wantsAlone: Bool) {
        if wantsAlone { alone = true } else { sharing += 1 }
    }
}
