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
    private let subscribers = TailSubscribers()
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
        subscribers.stop()
        thread.close()
    }

    func position(_ text: String) -> TailPosition? { TailPosition.parse(text, partitions: nil) }

    /// New batches from now on, until `cancel` is called with the returned id.
    func subscribe() async throws -> TailSubscription {
        subscribers.add { _ in .some(nil) }!
    }

    func cancel(_ id: Int) { subscribers.cancel(id) }

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

    private func loop() async {
        var backoff = Backoff(first: 0.2, max: 5)
        while !subscribers.isStopped {
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
                backoff.reset()
                subscribers.publish(batch)
            } catch {
                if subscribers.isStopped { return }
                subscribers.publish([])
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }
}

/// Stream ids read as numbers (`ms-seq`).
enum StreamID {
    static func parts(_ id: String) -> (UInt64, UInt64) {
        let split = id.split(separator: "-", maxSplits: 1)
        return (UInt64(split.first ?? "") ?? 0, split.count > 1 ? UInt64(split[1]) ?? 0 : 0)
    }
}
