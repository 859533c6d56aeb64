import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// One reader of the event stream for the whole console: `XREAD BLOCK` on a thread of its own,
/// each batch handed to every live-tail subscriber (an SSE response). Subscribers never touch
/// Redis for live events, so a hundred open tails cost one blocked connection.
final class EventTail: @unchecked Sendable {
    /// A batch of new entries; an empty one when `XREAD` timed out (a tick, for keep-alives).
    typealias Batch = [StreamEvent]

    private let thread: RedisConnectionThread
    private let stream: String
    private let lock = NSLock()
    private var subscribers: [Int: AsyncStream<Batch>.Continuation] = [:]
    private var nextID = 0
    private var stopped = false
    private var task: Task<Void, Never>?
    /// The last stream id read; entries after it are the next batch.
    private var last: String?

    init(configuration: RedisConfiguration, keys: Keys) {
        thread = RedisConnectionThread(configuration: configuration, name: "web.tail")
        stream = keys.eventStream
    }

    func start() {
        task = Task.detached { [self] in await loop() }
    }

    func stop() {
        lock.lock()
        stopped = true
        let all = subscribers.values
        subscribers.removeAll()
        lock.unlock()
        for continuation in all { continuation.finish() }
        thread.close()
    }

    /// New batches from now on, until `cancel` is called with the returned id.
    func subscribe() -> (id: Int, batches: AsyncStream<Batch>) {
        // A subscriber slower than the stream is let go when this buffer is full (`publish`):
        // the batches it has are sent, the one that did not fit is replayed after it reconnects.
        let (batches, continuation) = AsyncStream<Batch>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        lock.lock()
        defer { lock.unlock() }
        nextID += 1
        if stopped { continuation.finish() } else { subscribers[nextID] = continuation }
        return (nextID, batches)
    }

    func cancel(_ id: Int) {
        lock.lock()
        let continuation = subscribers.removeValue(forKey: id)
        lock.unlock()
        continuation?.finish()
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func loop() async {
        var backoff = 0.2
        while !isStopped {
            do {
                let stream = self.stream
                let after = last
                let (batch, newest): (Batch, String?) = try await thread.run { connection in
                    // The first read starts at the stream's newest entry (or the start of an empty stream).
                    let from = try after ?? connection.send("XREVRANGE", stream, "+", "-", "COUNT", 1).array?.first?.array?.first?.string ?? "0-0"
                    let reply = try connection.send("XREAD", "COUNT", 1000, "BLOCK", 1000, "STREAMS", stream, from)
                    let entries = reply.array?.first?.array?.last.map(StreamEvent.entries) ?? []
                    return (entries, entries.last?.id ?? from)
                }
                last = newest
                backoff = 0.2
                publish(batch)
            } catch {
                if isStopped { return }
                publish([])
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// Hands `batch` to every subscriber. One that fell so far behind that its buffer is full is
    /// let go: its response ends, and its browser reconnects with `Last-Event-ID` and is replayed
    /// what it missed, instead of silently losing events.
    private func publish(_ batch: Batch) {
        lock.lock()
        let all = subscribers
        lock.unlock()
        for (id, continuation) in all {
            if case .dropped = continuation.yield(batch) { cancel(id) }
        }
    }
}

/// Stream ids compared as numbers (`ms-seq`).
enum StreamID {
    static func parts(_ id: String) -> (UInt64, UInt64) {
        let split = id.split(separator: "-", maxSplits: 1)
        return (UInt64(split.first ?? "") ?? 0, split.count > 1 ? UInt64(split[1]) ?? 0 : 0)
    }

    static func isAfter(_ a: String, _ b: String) -> Bool {
        let (x, y) = (parts(a), parts(b))
        return x.0 != y.0 ? x.0 > y.0 : x.1 > y.1
    }
}
