import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// The live tail on a Redis Cluster: the per-partition streams `<prefix>:{p<k>}:events:stream`,
/// k in 0..<partitions (PROTOCOL.md section 11), merged in time order, through the cluster
/// client on a thread of its own.
///
/// A command may not name keys of two slots, so one `XREAD BLOCK` cannot wait on all streams.
/// The feed polls instead: each round reads every master's clock (`TIME`), then every stream
/// after what it has read (`XREAD COUNT`, one pipelined round trip per master), and sleeps
/// `interval` when nothing came.
///
/// **Order.** An entry is handed out only once no partition can still get one before it: a
/// master gives a new entry an id no lower than its clock, and its clock was read before its
/// streams were, so every entry not yet read has a time at least the lowest clock read (or, for
/// a stream read only in part, its last entry read). Entries up to that time less one ms — the
/// watermark — are sorted (by id, then partition) and published; later ones wait for a later
/// round. Each batch thus covers (previous watermark, watermark], and the tail comes out in
/// one order, whichever partition an entry is on: a browser that resumes after an SSE id
/// (`ms-seq.partition`) misses nothing and gets nothing twice.
final class PartitionedTail: EventFeed, @unchecked Sendable {
    let partitions: Int
    let streams: [String]
    /// Seconds between rounds that found nothing new.
    let interval: Double
    /// Entries read per stream per round.
    static let readCount = 1000

    private let thread: RedisClusterThread
    private let replay: RedisClusterThread
    private let slots: [Int]
    /// With the last published watermark (ms): every entry up to it was published.
    private let subscribers = TailSubscribers()
    private var task: Task<Void, Never>?
    /// Touched by the polling task only: the last id read per stream, and what was read but
    /// is after the watermark.
    private var read: [String] = []
    private var held: [TailEntry] = []

    init(configuration: RedisConfiguration, keys: Keys, partitions: Int, interval: Double = 0.05) {
        self.partitions = partitions
        self.interval = interval
        streams = (0..<partitions).map { Self.stream(keys, partition: $0) }
        slots = streams.map { RedisClusterSlot.of($0) }
        thread = RedisClusterThread(configuration: configuration, name: "web.tail")
        replay = RedisClusterThread(configuration: configuration, name: "web.replay")
    }

    /// `<prefix>:{p<k>}:events:stream` (PROTOCOL.md section 11).
    static func stream(_ keys: Keys, partition: Int) -> String { "\(keys.prefix):{p\(partition)}:events:stream" }

    func start() {
        task = Task.detached { [self] in await loop() }
    }

    func stop() {
        subscribers.stop()
        thread.close()
        replay.close()
    }

    func position(_ text: String) -> TailPosition? { TailPosition.parse(text, partitions: partitions) }

    /// Waits (up to 5 s) for the first watermark, so that a tail opened as the console starts
    /// has a place to start from.
    func subscribe() async throws -> TailSubscription {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            if let subscription = try subscribeNow() { return subscription }
            guard ContinuousClock.now < deadline else { throw RedisError.connection("no partition stream read yet") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A subscription from the current watermark, or nil while there is none yet.
    private func subscribeNow() throws -> TailSubscription? {
        if subscribers.isStopped { throw RedisError.closed }
        return subscribers.add { watermark in watermark.map { .some(Self.end(of: $0)) } }
    }

    func cancel(_ id: Int) { subscribers.cancel(id) }

    /// The last position of a millisecond: after every entry of it, on every partition.
    static func end(of ms: UInt64) -> TailPosition { TailPosition(ms: ms, seq: UInt64.max, partition: Int.max) }

    func backfill(after resume: TailPosition?, upTo watermark: TailPosition?, filter: EventFilter) async throws -> (entries: [TailEntry], gap: Bool) {
        guard let watermark else { return ([], false) }
        let streams = self.streams, partitions = self.partitions
        let end = "\(watermark.ms)"
        if let resume {
            guard resume < watermark else { return ([], false) }
            // Each stream from just after `resume` in the tail's order: a partition after
            // resume's own also holds what has resume's id exactly.
            let count = max(64, Limits.backfill / partitions)
            let replies = try await replay.run { client in
                try client.pipelinePerMaster((0..<partitions).map { k in
                    let start = k > resume.partition ? resume.id : "(" + resume.id
                    return RedisCommand("XRANGE", streams[k], start, end, "COUNT", count)
                })
            }
            var merged: [TailEntry] = []
            // A stream that filled its page may hold more: what is merged is whole only up to
            // the lowest last entry of such streams.
            var cutoff = watermark
            for (k, reply) in replies.enumerated() {
                let entries = StreamEvent.entries(reply).map { TailEntry($0, partition: k) }
                if entries.count == count, let last = entries.last { cutoff = min(cutoff, last.position) }
                merged += entries
            }
            merged.sort { $0.position < $1.position }
            let whole = merged.prefix { $0.position <= cutoff }
            let gap = cutoff < watermark
            return (Array(whole.prefix(Limits.backfill)), gap || whole.count > Limits.backfill)
        }
        // A new tail shows the latest matching events among the last few hundred.
        let count = max(8, Limits.recentEvents / partitions)
        let replies = try await replay.run { client in
            try client.pipelinePerMaster((0..<partitions).map { RedisCommand("XREVRANGE", streams[$0], end, "-", "COUNT", count) })
        }
        var merged: [TailEntry] = []
        for (k, reply) in replies.enumerated() {
            merged += StreamEvent.entries(reply).map { TailEntry($0, partition: k) }.filter { filter.matches($0.event.event) }
        }
        merged.sort { $0.position < $1.position }
        return (Array(merged.suffix(50)), false)
    }

    private func loop() async {
        var backoff = Backoff(first: 0.2, max: 5)
        var lastTick = ContinuousClock.now
        while !subscribers.isStopped {
            do {
                let (batch, newWatermark, readAll) = try await round()
                backoff.reset()
                // An empty batch about once a second is the subscribers' tick (keep-alives).
                let now = ContinuousClock.now
                let notify = !batch.isEmpty || now - lastTick >= .seconds(1)
                if notify { lastTick = now }
                subscribers.publish(batch, watermark: newWatermark, notify: notify)
                if readAll { try? await Task.sleep(for: .seconds(interval)) }
            } catch {
                if subscribers.isStopped { return }
                subscribers.publish([])
                try? await Task.sleep(for: .seconds(backoff.next()))
            }
        }
    }

    /// One round: the masters' clocks, then every stream after what was read. Returns the
    /// entries now under the watermark, the watermark, and whether every stream was read to
    /// its end.
    private func round() async throws -> (EventTail.Batch, UInt64, Bool) {
        let streams = self.streams, slots = self.slots, count = Self.readCount
        let from = read.isEmpty ? nil : read
        let (clock, after, replies) = try await thread.run { client -> (UInt64, [String], [RedisReply]) in
            let clock = try Self.lowestClock(client, slots: slots)
            // The first round starts every stream at that clock: the tail begins now.
            let after = from ?? Array(repeating: "\(clock > 0 ? clock - 1 : 0)-\(UInt64.max)", count: streams.count)
            let replies = try client.pipelinePerMaster(streams.indices.map { k in
                RedisCommand("XREAD", "COUNT", count, "STREAMS", streams[k], after[k])
            })
            return (clock, after, replies)
        }
        read = after
        var limit = clock > 0 ? clock - 1 : 0
        var readAll = true
        for (k, reply) in replies.enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message) }
            let entries = reply.array?.first?.array?.last.map(StreamEvent.entries) ?? []
            guard let last = entries.last else { continue }
            read[k] = last.id
            held += entries.map { TailEntry($0, partition: k) }
            if entries.count == count {
                // More may wait on this stream: only what is before its last entry's time is whole.
                readAll = false
                let ms = StreamID.parts(last.id).0
                limit = min(limit, ms > 0 ? ms - 1 : 0)
            }
        }
        let previous = subscribers.watermark ?? 0
        let watermark = max(previous, limit)
        held.sort { $0.position < $1.position }
        let cut = held.firstIndex { $0.position.ms > watermark } ?? held.count
        let batch = Array(held[..<cut])
        held.removeFirst(cut)
        return (batch, watermark, readAll)
    }

    /// The lowest of the clocks (ms) of the masters that serve `slots`, each read once.
    private static func lowestClock(_ client: RedisClusterClient, slots: [Int]) throws -> UInt64 {
        if client.master(forSlot: slots[0]) == nil { try client.refreshTopology() }
        var asked: Set<String> = []
        var lowest = UInt64.max
        for slot in slots {
            let master = client.master(forSlot: slot).map { "\($0)" } ?? "slot \(slot)"
            guard asked.insert(master).inserted else { continue }
            let parts = try client.send(RedisCommand("TIME"), slot: slot).array?.compactMap { $0.string.flatMap { UInt64($0) } } ?? []
            guard parts.count == 2 else { throw RedisError.protocolError("TIME: unexpected reply") }
            lowest = min(lowest, parts[0] * 1000 + parts[1] / 1000)
        }
        return lowest == UInt64.max ? 0 : lowest
    }

}

