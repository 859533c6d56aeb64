import Coordination
import Foundation
import Logging
import RedisClient

/// The daemon's housekeeping, on a thread of its own: the heartbeat, expiry of overdue
/// approvals, and recovery of what lapsed workers left in flight. Every daemon runs it; the
/// commits make sure each overdue approval expires once and each lost message returns once.
final class Maintenance: @unchecked Sendable {
    private let context: DaemonContext
    private let loop: LoopThread

    init(context: DaemonContext) {
        self.context = context
        self.loop = LoopThread(name: "maintenance", context: context)
    }

    func start() {
        loop.start { [self] in run() }
    }

    func stop() { loop.stop() }

    private func run() {
        var lastRecovery = Date.distantPast
        while !loop.isStopping {
            do {
                let connection = try loop.currentConnection()
                try beat(connection)
                try expireOverdueApprovals(connection)
                if Date().timeIntervalSince(lastRecovery) >= context.configuration.heartbeatTTL / 2 {
                    try recoverLapsedWorkers(connection)
                    lastRecovery = Date()
                }
            } catch {
                context.metrics.redisError()
                context.logger.error("maintenance: Redis unavailable, retrying", metadata: ["error": "\(error)"])
            }
            for _ in 0..<5 where !loop.isStopping { Thread.sleep(forTimeInterval: 0.1) }
        }
        // A clean stop leaves no heartbeat behind, so nobody waits for it to lapse.
        if let connection = loop.openConnection {
            _ = try? connection.pipeline([
                RedisCommand("DEL", context.keys.worker(context.workerID)),
                RedisCommand("SREM", context.keys.workerIndex, context.workerID),
            ])
            connection.close()
        }
    }

    private func beat(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let counts = context.counters.snapshot
        let key = keys.worker(context.workerID)
        _ = try connection.pipeline([
            RedisCommand("HSET", key,
                         "host", ProcessInfo.processInfo.hostName, "pid", Int(getpid()),
                         "started_at", Timestamp.string(from: context.startedAt), "version", DaemonVersion.current,
                         "processed", counts.processed, "dead_lettered", counts.deadLettered,
                         "plans_finished", counts.plansFinished, "beat_at", Timestamp.string(from: Date())),
            RedisCommand("PEXPIRE", key, Int(context.configuration.heartbeatTTL * 1000)),
            RedisCommand("SADD", keys.workerIndex, context.workerID),
        ])
    }

    /// Turns pending approvals past their expiry into `expired`, within about a second.
    private func expireOverdueApprovals(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let now = Date()
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        let due = try connection.send("ZRANGEBYSCORE", keys.pendingApprovals, "-inf", nowMs, "LIMIT", 0, 500)
        let ids = (due.array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return }
        let stored = try connection.pipeline(ids.map { RedisCommand("GET", keys.approval($0)) })
        var approvals: [(bytes: [UInt8], approval: Approval)] = []
        var commits: [Commit] = []
        for (id, reply) in zip(ids, stored) {
            guard let bytes = reply.bytes, let approval = try? WireJSON.decoder().decode(Approval.self, from: Data(bytes)) else {
                // An index entry without its approval: nothing to expire, drop the entry.
                var commit = Commit()
                commit.write("ZREM", keys.pendingApprovals, id)
                commits.append(commit)
                continue
            }
            approvals.append((bytes, approval))
        }
        let records = try connection.pipeline(approvals.map {
            RedisCommand("HGET", keys.active(customer: $0.approval.customerID), $0.approval.recommendationID)
        })
        for ((bytes, approval), recordReply) in zip(approvals, records) {
            var commit = Commit()
            commit.require(keys.approval(approval.id), .equals(bytes))
            let transition = context.configuration.policy.expire(approval, now: now)
            // Still pending but not yet due (the index rounds to ms): the next sweep gets it.
            if transition == nil && approval.status == .pending { continue }
            commit.write("ZREM", keys.pendingApprovals, approval.id)
            commit.write("ZREM", keys.pendingApprovals(customer: approval.customerID), approval.id)
            if let transition {
                commit.write("SET", keys.approval(approval.id), WireJSON.bytes(transition.approval))
                context.events.emit(transition.events, at: now, into: &commit)
                let record = recordReply.bytes.flatMap { try? RecommendationRecord.decode($0) }
                context.retire(customer: approval.customerID, recommendationID: approval.recommendationID,
                               record: record, status: .expired, into: &commit)
                context.logger.info("approval expired", metadata: ["approval_id": "\(approval.id)"])
            }
            commits.append(commit)
        }
        // A guard that fails means someone decided meanwhile; the next sweep sees the truth.
        _ = try Commit.apply(commits, on: connection)
    }

    /// Hands the in-flight messages of workers whose heartbeat lapsed back to their queues.
    private func recoverLapsedWorkers(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string)
        let others = workers.filter { $0 != context.workerID }
        guard !others.isEmpty else { return }
        let alive = try connection.pipeline(others.map { RedisCommand("EXISTS", keys.worker($0)) })
        for (worker, exists) in zip(others, alive) where exists.integer == 0 {
            var moved = 0
            let prefix = keys.inflight(worker: worker, queue: "")
            var cursor = "0"
            repeat {
                let page = try connection.send("SCAN", cursor, "MATCH", keys.inflightPattern(worker: worker), "COUNT", 1000)
                let parts = page.array ?? []
                cursor = parts.first?.string ?? "0"
                for inflight in (parts.count > 1 ? parts[1].array ?? [] : []).compactMap(\.string) {
                    // "<prefix>:inflight:<worker>:<queue>:<loop index>" -> "<prefix>:<queue>"
                    let rest = inflight.dropFirst(prefix.count)
                    guard let cut = rest.lastIndex(of: ":") else { continue }
                    let queue = "\(keys.prefix):\(rest[..<cut])"
                    moved += Int(try connection.run(Scripts.requeue, keys: [inflight, queue], args: []).integer ?? 0)
                }
            } while cursor != "0"
            _ = try connection.send("SREM", keys.workerIndex, worker)
            context.logger.warning("recovered a lapsed worker's in-flight messages",
                                   metadata: ["worker": "\(worker)", "messages": "\(moved)"])
        }
    }
}

public enum DaemonVersion {
    public static let current = "0.1.0"
}
