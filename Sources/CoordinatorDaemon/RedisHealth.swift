import Foundation

/// Whether Redis takes this daemon's writes, as its loops last found: a loop that finds Redis
/// gone or refusing writes (OOM, a replica, loading) says so, and says so again once a write
/// went through. `coordinatord_up` is 0 meanwhile, even while reads still succeed.
final class RedisHealth: @unchecked Sendable {
    private let lock = NSLock()
    private var refusing = 0

    /// A loop found Redis refusing (counted once per loop until it recovers).
    func writesRefused() {
        lock.withLock { refusing += 1 }
    }

    /// A loop that had found Redis refusing wrote again.
    func writesAccepted() {
        lock.withLock { refusing = max(0, refusing - 1) }
    }

    var isRefusingWrites: Bool { lock.withLock { refusing > 0 } }
}
