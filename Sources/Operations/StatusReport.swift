import CoordinatorDaemon
import Foundation
import RedisClient

/// What `coordinatord status` shows and the console's overview: live daemons (from their
/// heartbeats), queue depths, messages in flight, pending approvals, plans, dead letters.
/// A fixed number of Redis round trips, whatever is stored.
public struct StatusReport {
    public static let queues = ["requests", "approvals", "steps:results", "plans:ready"]

    /// One hash per live daemon: `worker` and its heartbeat's fields.
    public var daemons: [[String: Any]]
    /// Waiting messages per queue of `queues`.
    public var depths: [String: Int]
    public var inflight: [String: Int]
    public var pendingApprovals: Int
    public var nextApprovalExpiry: Date?
    public var runningPlans: Int
    /// Plans created but not started (`plans:held`).
    public var heldPlans: Int
    public var deadLetters: Int
    public var now: Date
    /// On a cluster: how many partitions there are, and how many a live lease holds (each
    /// daemon's count is its `partitions` field in `daemons`).
    public var partitions: (count: Int, held: Int)?

    /// Reads the report where `layout` says the state is: one Redis, or every partition of a
    /// cluster (`readPartitioned`).
    public static func read(_ redis: any StateRedis, layout: StateLayout) throws -> StatusReport {
        if let connection = redis as? RedisConnection, !layout.isPartitioned { return try read(connection, keys: layout.keys) }
        guard let cluster = redis as? RedisClusterClient else { throw OperationFailure("a partitioned layout needs a Redis Cluster client") }
        return try readPartitioned(cluster, layout: layout)
    }

    public static func read(_ connection: RedisConnection, keys: Keys) throws -> StatusReport {
        let now = redisNow(connection)
        let live = try HealthCheck.liveWorkers(connection, keys: keys)
        let beats = try live.isEmpty ? [] : connection.pipeline(live.map { RedisCommand("HGETALL", keys.worker($0)) })
        var daemons: [[String: Any]] = []
        for (worker, reply) in zip(live, beats) {
            var fields = hashFields(reply)
            fields["worker"] = worker
            daemons.append(fields)
        }
        let depths = try connection.pipeline(queues.map { RedisCommand("LLEN", keys.queue($0)) })
        let inflight = try inflightByQueue(connection, keys: keys)
        let counts = try connection.pipeline([
            RedisCommand("ZCARD", keys.pendingApprovals),
            RedisCommand("ZRANGE", keys.pendingApprovals, 0, 0, "WITHSCORES"),
            RedisCommand("ZCARD", keys.runningPlans),
            RedisCommand("LLEN", keys.dead),
            RedisCommand("ZCARD", keys.heldPlans),
        ])
        var depthByQueue: [String: Int] = [:]
        for (queue, depth) in zip(queues, depths) { depthByQueue[queue] = Int(depth.integer ?? 0) }
        return StatusReport(
            daemons: daemons, depths: depthByQueue, inflight: inflight,
            pendingApprovals: Int(counts[0].integer ?? 0),
            nextApprovalExpiry: (counts[1].array?.last?.string).flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) },
            runningPlans: Int(counts[2].integer ?? 0), heldPlans: Int(counts[4].integer ?? 0),
            deadLetters: Int(counts[3].integer ?? 0), now: now, partitions: nil)
    }

    /// Messages in every live or lapsed worker's in-flight lists, by queue, from the registry
    /// each worker keeps of them (`<prefix>:inflight-lists:<worker>`: list -> queue); no SCAN.
    static func inflightByQueue(_ connection: RedisConnection, keys: Keys) throws -> [String: Int] {
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string)
        guard !workers.isEmpty else { return [:] }
        let registries = try connection.pipeline(workers.map { RedisCommand("HGETALL", keys.inflightLists(worker: $0)) })
        var lists: [(list: String, queue: String)] = []
        for registry in registries {
            let fields = (registry.array ?? []).compactMap(\.string)
            var index = 0
            while index + 1 < fields.count {
                let queue = fields[index + 1]
                lists.append((fields[index], keys.queueName(queue)))
                index += 2
            }
        }
        guard !lists.isEmpty else { return [:] }
        let lengths = try connection.pipeline(lists.map { RedisCommand("LLEN", $0.list) })
        var result: [String: Int] = [:]
        for (entry, length) in zip(lists, lengths) {
            result[entry.queue, default: 0] += Int(length.integer ?? 0)
        }
        return result
    }

    /// The queues of a partition besides `queues`: replies waiting to be delivered.
    public static let partitionQueues = queues + ["outbox"]

    /// On a Redis Cluster (PROTOCOL.md section 11): the daemons registered in
    /// `<prefix>:daemons` with the partitions each holds, the entry queues, and every
    /// partition's queues, in-flight lists, outbox, indexes and dead letters summed (plus the
    /// global dead list): a few rounds of one pipeline per master, no SCAN.
    static func readPartitioned(_ redis: RedisClusterClient, layout: StateLayout) throws -> StatusReport {
        let keys = layout.keys, parts = layout.places
        let now = redis.clock()
        let live: [String]
        do { live = try HealthCheck.liveDaemons(redis, keys: keys) } catch { throw StateRedisError.mapped(error) }
        let owners = try redis.everyPlace(layout) { RedisCommand("GET", $0.partitionLease) }.map(\.string)
        var depths: [String: Int] = [:]
        let entry = ["requests", "approvals", "steps:results"]
        for (queue, depth) in zip(entry, try redis.calls(entry.map { RedisCommand("LLEN", keys.queue($0)) })) {
            depths[queue, default: 0] += Int(depth.integer ?? 0)
        }
        var commands: [RedisCommand] = []
        for part in parts {
            commands += partitionQueues.map { RedisCommand("LLEN", $0 == "outbox" ? part.outbox : part.queue($0)) }
            commands += [RedisCommand("ZCARD", part.pendingApprovals), RedisCommand("ZRANGE", part.pendingApprovals, 0, 0, "WITHSCORES"),
                         RedisCommand("ZCARD", part.runningPlans), RedisCommand("ZCARD", part.heldPlans),
                         RedisCommand("LLEN", part.dead), RedisCommand("SMEMBERS", part.workerIndex)]
        }
        commands.append(RedisCommand("LLEN", keys.dead))
        let replies = try redis.calls(commands)
        let per = partitionQueues.count + 6
        var counts = [Int](repeating: 0, count: 6)
        var next: Double?
        var registries: [(command: RedisCommand, keys: Keys)] = []
        for (k, part) in parts.enumerated() {
            let r = replies[(k * per)..<((k + 1) * per)].map { $0 }
            for (i, queue) in partitionQueues.enumerated() { depths[queue, default: 0] += Int(r[i].integer ?? 0) }
            for i in [0, 2, 3, 4] { counts[i] += Int(r[partitionQueues.count + i].integer ?? 0) }
            if let score = (r[partitionQueues.count + 1].array?.last?.string).flatMap(Double.init) { next = min(next ?? score, score) }
            for worker in (r[partitionQueues.count + 5].array ?? []).compactMap(\.string) {
                registries.append((RedisCommand("HGETALL", part.inflightLists(worker: worker)), part))
            }
        }
        // In flight: every partition worker's lists, by the queue each hands back to.
        var lists: [(list: String, queue: String)] = []
        for (registry, part) in zip(try redis.calls(registries.map(\.command)), registries) {
            let fields = (registry.array ?? []).compactMap(\.string)
            for i in stride(from: 0, to: fields.count - 1, by: 2) {
                lists.append((fields[i], part.keys.queueName(fields[i + 1])))
            }
        }
        var inflight: [String: Int] = [:]
        for (entry, length) in zip(lists, try redis.calls(lists.map { RedisCommand("LLEN", $0.list) })) {
            inflight[entry.queue, default: 0] += Int(length.integer ?? 0)
        }
        var holding: [String: Int] = [:]
        for owner in owners.compactMap({ $0 }) { holding[owner, default: 0] += 1 }
        return StatusReport(
            daemons: live.map { ["worker": $0, "partitions": holding[$0] ?? 0] }, depths: depths, inflight: inflight,
            pendingApprovals: counts[0], nextApprovalExpiry: next.map { Date(timeIntervalSince1970: $0 / 1000) },
            runningPlans: counts[2], heldPlans: counts[3], deadLetters: counts[4] + Int(replies.last?.integer ?? 0), now: now,
            partitions: (parts.count, owners.compactMap { $0 }.count))
    }
}
