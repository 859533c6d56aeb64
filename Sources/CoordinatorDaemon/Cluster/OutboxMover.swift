import Foundation
import Logging
import RedisClient

/// Moves a partition's replies from its outbox to their `reply_to` lists (PROTOCOL.md section
/// 11), on a thread of its own: entries are taken into this worker's sending list (named in
/// the partition's index of in-flight lists, so a dead daemon's are handed back by the next
/// holder's recovery), pushed to their `reply_to` by the rules of section 2.1, and only then
/// removed. A crash between the two sends an entry again, byte for byte the same. With
/// `--min-replicas-acked N`, nothing is pushed before a `WAIT N` on the partition's master
/// (after the move, itself a write that follows the commits) says N replicas have it, and
/// nothing is removed before a `WAIT N` on each `reply_to` list's master says its push is there.
final class OutboxMover: @unchecked Sendable {
    private let context: DaemonContext
    private let cluster: RedisConfiguration
    private let loop: LoopThread
    private let outbox: String
    private let sending: String

    /// Entries taken at once.
    static let batch = 128

    /// What an outbox holds: replies for `reply_to` lists, or step dispatches for agents'
    /// step lists (`StepOutbox`, with `--executor agents`).
    enum Kind: Sendable {
        case replies, steps
    }

    private let kind: Kind

    init(context: DaemonContext, cluster: RedisConfiguration, kind: Kind = .replies) {
        self.context = context
        self.cluster = cluster
        self.kind = kind
        switch kind {
        case .replies:
            self.outbox = context.keys.outbox
            self.sending = context.keys.outboxSending(worker: context.workerID)
        case .steps:
            self.outbox = context.keys.stepOutbox
            self.sending = context.keys.stepOutboxSending(worker: context.workerID)
        }
        self.loop = LoopThread(name: kind == .replies ? "outbox" : "step-outbox", context: context)
    }

    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        let client = RedisClusterClient(configuration: cluster)
        defer { client.close() }
        var registered = false
        var backoff = Backoff(first: 0.05, max: 2)
        while !loop.isStopping {
            guard loop.announced() else { continue }
            do {
                let connection = try loop.currentConnection()
                if !registered {
                    _ = try connection.send("HSET", context.keys.inflightLists(worker: context.workerID), sending, outbox)
                    registered = true
                }
                // What a previous run of ours left (a failure, or a restart on a new master) first.
                var entries = Self.list(try connection.send("LRANGE", sending, 0, -1)).reversed() as [[UInt8]]
                if entries.isEmpty {
                    guard let first = try connection.blockingMove(from: outbox, to: sending, timeout: 1) else { continue }
                    entries = [first]
                    // The daemon's own entries: no bound of their own, a batch's bytes bounded.
                    entries += Self.list(try connection.run(ClusterScripts.takeMore, keys: [outbox, sending],
                                                            args: [Self.batch - 1, QueueWorker.batchBytes, QueueWorker.batchBytes]))
                }
                try awaitReplicas(connection)
                switch kind {
                case .replies: try deliver(entries, client: client, connection: connection)
                case .steps: try deliverSteps(entries, client: client, connection: connection)
                }
                backoff.reset()
            } catch {
                context.metrics.redisError()
                context.logger.warning("\(kind == .replies ? "outbox" : "step outbox"): entries wait; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
        loop.openConnection?.close()
    }

    /// `WAIT N` on the partition's master after a write of this connection's own (its in-flight
    /// index entry, again), in one round trip with the replica count (`ReplicaCount`): the write comes after the
    /// commits of every entry taken, so N replicas having it means they have those commits. A
    /// socket made anew in between (the master restarted, failed over) proves nothing: thrown,
    /// and asked again on the next round.
    private func awaitReplicas(_ connection: RedisConnection) throws {
        let wanted = context.configuration.minReplicasAcked
        guard wanted > 0 else { return }
        let index = RedisCommand("HSET", context.keys.inflightLists(worker: context.workerID), sending, outbox)
        var socket = 0
        try ReplicaCount.await(wanted, slot: RedisClusterSlot.of(outbox), patience: 0, master: "the partition's master", probe: {
            let replies = try connection.pipeline([index] + ReplicaCount.probe)
            if case .error(let message) = replies[0] { throw RedisError.server(message) }
            socket = connection.generation
            return Array(replies.dropFirst())
        }, wait: { (count: Int) in Int(try connection.send("WAIT", count, 1000).integer ?? 0) }, sameSocket: { connection.generation == socket })
    }

    private func deliver(_ entries: [[UInt8]], client: RedisClusterClient, connection: RedisConnection) throws {
        let config = context.configuration
        var calls: [RedisCommand] = []
        var targets: [(replyTo: String, reply: [UInt8])] = []
        for entry in entries {
            guard let cut = entry.firstIndex(of: UInt8(ascii: "\n")), cut > 0 else { continue }
            let replyTo = String(decoding: entry[..<cut], as: UTF8.self)
            let reply = Array(entry[(cut + 1)...])
            targets.append((replyTo, reply))
            calls.append(ClusterScripts.deliverReply.command(
                keys: [replyTo], args: [reply, config.replyTTL, config.replyMax, config.replyPrefix != nil ? "1" : "0"]))
        }
        let replies = try client.pipelinePerMaster(calls)
        var refused: [(raw: [UInt8], replyTo: String, error: String)] = []
        for (target, reply) in zip(targets, replies) {
            switch reply {
            case .integer(let cut) where cut > 0: context.metrics.repliesDropped(Int(cut))
            case .error(let message):
                let error = RedisError.server(message)
                if error.isOutage { throw error }
                refused.append((target.reply, target.replyTo, message))
            default: break
            }
        }
        if !refused.isEmpty {
            try context.deadLetterUndeliverable(refused, queue: "outbox", now: Date(), connection: connection)
        }
        // An entry leaves the sending list only once its push is on the replicas too: a reply
        // list's master that dies before it replicates the push would lose the reply, and the
        // entry with it.
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: Set(calls.compactMap { RedisClusterSlot.of($0) }))
        _ = try connection.pipeline(entries.map { RedisCommand("LREM", sending, -1, $0) })
    }

    /// Delivers (or withdraws) step dispatches (`StepOutbox`), one script per entry, one
    /// pipeline per master; then removes them from the sending list. A push Redis refuses
    /// (the agent's list is of another type) is dead-lettered as `reply_undeliverable`; the
    /// step then fails at its deadline. An entry that cannot be read is dropped (logged).
    private func deliverSteps(_ entries: [[UInt8]], client: RedisClusterClient, connection: RedisConnection) throws {
        let ttl = StepOutbox.markTTLMs(stepTimeout: context.configuration.stepTimeout)
        let root = Keys(prefix: context.keys.root)
        var parsed: [(raw: [UInt8], entry: StepOutbox.Entry)] = []
        for raw in entries {
            guard let entry = StepOutbox.parse(raw) else {
                context.logger.error("step outbox: unreadable entry dropped", metadata: ["entry": "\(String(decoding: raw.prefix(200), as: UTF8.self))"])
                continue
            }
            parsed.append((raw, entry))
        }
        let calls = parsed.map { StepOutbox.command($0.entry, keys: root, markTTLMs: ttl) }
        let replies = try client.pipelinePerMaster(calls)
        var refused: [(raw: [UInt8], replyTo: String, error: String)] = []
        for (item, reply) in zip(parsed, replies) {
            guard case .error(let message) = reply else { continue }
            let error = RedisError.server(message)
            if error.isOutage { throw error }
            refused.append((item.entry.message, item.entry.list, message))
        }
        if !refused.isEmpty {
            try context.deadLetterUndeliverable(refused, queue: "steps:outbox", now: Date(), connection: connection)
        }
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: Set(calls.compactMap { RedisClusterSlot.of($0) }))
        _ = try connection.pipeline(entries.map { RedisCommand("LREM", sending, -1, $0) })
    }

    private static func list(_ reply: RedisReply) -> [[UInt8]] {
        (reply.array ?? []).compactMap(\.bytes)
    }
}
