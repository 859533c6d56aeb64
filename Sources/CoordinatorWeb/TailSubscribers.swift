import Foundation

/// The live tails an `EventFeed` hands its batches to, one per open SSE response, and the
/// feed's watermark (`PartitionedTail`'s; `EventTail` has none) under the same lock: a
/// subscriber added at a watermark gets exactly the batches published after it.
final class TailSubscribers: @unchecked Sendable {
    private let lock = NSLock()
    private var subscribers: [Int: AsyncStream<EventTail.Batch>.Continuation] = [:]
    private var nextID = 0
    private var stopped = false
    private var mark: UInt64?

    var isStopped: Bool { lock.withLock { stopped } }

    /// The last published watermark (ms).
    var watermark: UInt64? { lock.withLock { mark } }

    /// Adds a subscriber whose batches start where `start` says, given the watermark; none
    /// while `start` returns nil. After `stop()` the subscription's batches end at once.
    func add(_ start: (UInt64?) -> TailPosition??) -> TailSubscription? {
        // A subscriber slower than the feed is let go when this buffer is full (`publish`):
        // the batches it has are sent, the one that did not fit is replayed after it reconnects.
        lock.lock()
        defer { lock.unlock() }
        guard let position = start(mark) else { return nil }
        let (batches, continuation) = AsyncStream<EventTail.Batch>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        nextID += 1
        if stopped { continuation.finish() } else { subscribers[nextID] = continuation }
        return TailSubscription(id: nextID, batches: batches, watermark: position)
    }

    func cancel(_ id: Int) {
        let continuation = lock.withLock { subscribers.removeValue(forKey: id) }
        continuation?.finish()
    }

    /// Moves the watermark (when given) and hands `batch` to every subscriber (with `notify`),
    /// in one step with respect to `add`. One that fell so far behind that its buffer is full
    /// is let go: its response ends, and its browser reconnects with `Last-Event-ID` and is
    /// replayed what it missed, instead of silently losing events.
    func publish(_ batch: EventTail.Batch, watermark newMark: UInt64? = nil, notify: Bool = true) {
        lock.lock()
        if let newMark { mark = newMark }
        var dropped: [Int] = []
        for (id, continuation) in subscribers where notify {
            if case .dropped = continuation.yield(batch) { dropped.append(id) }
        }
        let gone = dropped.compactMap { subscribers.removeValue(forKey: $0) }
        lock.unlock()
        for continuation in gone { continuation.finish() }
    }

    /// Ends every subscription; later ones end at once.
    func stop() {
        lock.lock()
        stopped = true
        let all = subscribers.values
        subscribers.removeAll()
        lock.unlock()
        for continuation in all { continuation.finish() }
    }
}
