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
            deadLetters: Int(counts[3].integer ?? 0), now: now)
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
                lists.append((fields[index], queue.hasPrefix(keys.prefix + ":") ? String(queue.dropFirst(keys.prefix.count + 1)) : queue))
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
}
