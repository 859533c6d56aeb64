import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// Where the live tail's events come from: `EventTail` (one stream, `XREAD BLOCK`) or, on a
/// Redis Cluster, `PartitionedTail` (the per-partition streams merged in time order). One feed
/// serves every open tail (SSE response): subscribers never touch Redis for live events.
protocol EventFeed: AnyObject, Sendable {
    func start()
    func stop()
    /// New batches from now on, until `cancel(id)`; `watermark`, when the feed has one, is where
    /// the first batch starts: every entry a batch carries is after it.
    func subscribe() async throws -> TailSubscription
    func cancel(_ id: Int)
    /// What a tail sends before the live batches, read after `subscribe`: with `resume`, what
    /// came after it (at most `Limits.backfill` entries, `gap` when more were missed); without,
    /// the latest events that match `filter`. Never past `watermark`.
    func backfill(after resume: TailPosition?, upTo watermark: TailPosition?, filter: EventFilter) async throws -> (entries: [TailEntry], gap: Bool)
    /// How a tail's SSE ids are read back (`Last-Event-ID`, `?after=`).
    func position(_ text: String) -> TailPosition?
}

struct TailSubscription: Sendable {
    let id: Int
    let batches: AsyncStream<EventTail.Batch>
    let watermark: TailPosition?
}

/// One event of the tail: the stream entry, and the partition whose stream it is on a cluster.
struct TailEntry: @unchecked Sendable {
    let event: StreamEvent
    let partition: Int?
    let position: TailPosition

    init(_ event: StreamEvent, partition: Int? = nil) {
        self.event = event
        self.partition = partition
        position = TailPosition(id: event.id, partition: partition ?? 0)
    }

    /// The SSE id, which the browser sends back as `Last-Event-ID`: the stream id, and on a
    /// cluster `.<partition>` after it (two partitions' streams can hold the same id).
    var sseID: String { partition.map { "\(event.id).\($0)" } ?? event.id }
}

/// A place in the tail, in its order: stream ids by time, then (on a cluster, where partitions'
/// ids can be equal) by partition.
struct TailPosition: Comparable, Sendable, CustomStringConvertible {
    var ms: UInt64
    var seq: UInt64
    var partition: Int

    init(ms: UInt64, seq: UInt64, partition: Int) {
        self.ms = ms
        self.seq = seq
        self.partition = partition
    }

    init(id: String, partition: Int) {
        let (ms, seq) = StreamID.parts(id)
        self.init(ms: ms, seq: seq, partition: partition)
    }

    /// `ms-seq.partition`, or a bare stream id (`ms-seq`, `ms`), which stands for the end of
    /// that id: after it on every partition.
    static func parse(_ text: String, partitions: Int?) -> TailPosition? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let id = String(parts[0])
        guard StreamEvent.isStreamID(id) else { return nil }
        let (ms, seq) = StreamID.parts(id)
        guard parts.count == 2 else { return TailPosition(ms: ms, seq: seq, partition: Int.max) }
        guard let partitions, let partition = Int(parts[1]), (0..<partitions).contains(partition),
              parts[1].allSatisfy(\.isNumber) else { return nil }
        return TailPosition(ms: ms, seq: seq, partition: partition)
    }

    /// The stream id part.
    var id: String { "\(ms)-\(seq)" }
    var description: String { partition == Int.max ? id : "\(id).\(partition)" }

    static func < (a: TailPosition, b: TailPosition) -> Bool {
        (a.ms, a.seq, a.partition) < (b.ms, b.seq, b.partition)
    }
}

/// One reader of the event stream for the whole console: `XREAD BLOCK` on a thread of its own,
/// each batch handed to every live-tail subscriber (an SSE response). Subscribers never touch
/// Redis for live events, so a hundred open tails cost one blocked connection.
final class EventTail: EventFeed, @unchecked Sendable {
    /// A batch of new entries; an empty one when `XREAD` timed out (a tick, for keep-alives).
    typealias Batch = [TailEntry]

    private let thread: RedisConnectionThread
    /// Where backfills are read (the console's page readers).
    private let bridge: RedisBridge
    private let stream: String
    private let lock = NSLock()
    private var subscribers: [Int: AsyncStream<Batch>.Continuation] = [:]
    private var nextID = 0
    private var stopped = false
    private var task: Task<Void, Never>?
    /// The last stream id read; entries after it are the next batch.
    private var last: String?

    init(configuration: RedisConfiguration, keys: Keys, bridge: RedisBridge) {
        thread = RedisConnectionThread(configuration: configuration, name: "web.tail")
        stream = keys.eventStream
        self.bridge = bridge
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

    func position(_ text: String) -> TailPosition? { TailPosition.parse(text, partitions: nil) }

    func subscribe() async throws -> TailSubscription {
        let (id, batches) = subscribeNow()
        return TailSubscription(id: id, batches: batches, watermark: nil)
    }

    func backfill(after resume: TailPosition?, upTo watermark: TailPosition?, filter: EventFilter) async throws -> (entries: [TailEntry], gap: Bool) {
        let stream = self.stream
        return try await bridge.read { connection in
            if let resume {
                let reply = try connection.call(RedisCommand("XRANGE", stream, "(" + resume.id, "+", "COUNT", Limits.backfill))
                let entries = StreamEvent.entries(reply)
                return (entries.map { TailEntry($0) }, entries.count == Limits.backfill)
            }
            // A new tail shows the latest matching events among the last few hundred.
            let entries = StreamEvent.entries(try connection.call(RedisCommand("XREVRANGE", stream, "+", "-", "COUNT", Limits.recentEvents)))
            return (Array(entries.filter { filter.matches($0.event) }.prefix(50).reversed().map { TailEntry($0) }), false)
        }
    }

    /// New batches from now on, until `cancel` is called with the returned id.
    private func subscribeNow() -> (id: Int, batches: AsyncStream<Batch>) {
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
                    return (entries.map { TailEntry($0) }, entries.last?.id ?? from)
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
