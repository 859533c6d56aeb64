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

    /// Runs housekeeping until graceful shutdown, which removes this daemon's heartbeat.
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        var lastRecovery = Date.distantPast
        while !loop.isStopping {
            // Each task on its own: one that fails (a sweeper meeting a bad entry, say) never
            // keeps the others from running.
            if let connection = try? loop.currentConnection() {
                task("heartbeat") { () throws(RedisError) in try beat(connection) }
                task("approval expiry") { () throws(RedisError) in try expireOverdueApprovals(connection) }
                task("plan hold") { () throws(RedisError) in try cancelHeldPlans(connection) }
                if Date().timeIntervalSince(lastRecovery) >= context.configuration.heartbeatTTL / 2 {
                    task("recovery") { () throws(RedisError) in try recoverLapsedWorkers(connection) }
                    lastRecovery = Date()
                }
            } else {
                context.metrics.redisError()
                context.logger.error("maintenance: Redis unavailable, retrying")
            }
            for _ in 0..<5 where !loop.isStopping { Thread.sleep(forTimeInterval: 0.1) }
        }
        // A clean stop leaves no heartbeat behind, so nobody waits for it to lapse.
        if let connection = loop.openConnection {
            _ = try? connection.pipeline([
                RedisCommand("DEL", context.keys.worker(context.workerID)),
                RedisCommand("SREM", context.keys.workerIndex, context.workerID),
                RedisCommand("DEL", context.keys.inflightLists(worker: context.workerID)),
            ])
            connection.close()
        }
    }

    private func task(_ name: String, _ body: () throws(RedisError) -> Void) {
        do {
            try body()
        } catch {
            context.metrics.redisError()
            context.logger.error("maintenance: \(name) failed; the other tasks go on", metadata: ["error": "\(error)"])
        }
    }

    private func beat(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let counts = context.counters.snapshot
        let key = keys.worker(context.workerID)
        let ttlMs = Int(context.configuration.heartbeatTTL * 1000)
        _ = try connection.pipeline([
            RedisCommand("HSET", key,
                         "host", ProcessInfo.processInfo.hostName, "pid", Int(getpid()),
                         "started_at", Timestamp.string(from: context.startedAt), "version", DaemonVersion.current,
                         "processed", counts.processed, "dead_lettered", counts.deadLettered,
                         "plans_finished", counts.plansFinished, "beat_at", Timestamp.string(from: Date())),
            RedisCommand("PEXPIRE", key, ttlMs),
            RedisCommand("SADD", keys.workerIndex, context.workerID),
        ])
        context.announced.set()
    }

    /// Turns pending approvals past their expiry into `expired`, within about a second.
    private func expireOverdueApprovals(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let now = try RedisClock.now(connection)
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
                context.store.dropPendingEntry(id, into: &commit)
                commits.append(commit)
                continue
            }
            approvals.append((bytes, approval))
        }
        let records = approvals.isEmpty ? [] : try connection.pipeline(approvals.map {
            RedisCommand("HGET", keys.active(customer: $0.approval.customerID), $0.approval.recommendationID)
        })
        for ((bytes, approval), recordReply) in zip(approvals, records) {
            var commit = Commit()
            commit.require(keys.approval(approval.id), .equals(bytes))
            let transition = context.configuration.policy.expire(approval, now: now)
            // Still pending but not yet due (the index rounds to ms): the next sweep gets it.
            if transition == nil && approval.status == .pending { continue }
            if let transition {
                context.store.decide(transition.approval, into: &commit)
                context.events.emit(transition.events, at: now, into: &commit)
                let record = recordReply.bytes.flatMap { try? RecommendationRecord.decode($0) }
                context.store.retire(customer: approval.customerID, recommendationID: approval.recommendationID,
                                     record: record, status: .expired, approvalID: approval.id, into: &commit)
                context.logger.info("approval expired", metadata: ["approval_id": "\(approval.id)"])
            } else {
                context.store.decide(approval, into: &commit)
            }
            commits.append(commit)
        }
        // A guard that fails means someone decided meanwhile; the next sweep sees the truth.
        _ = try Commit.apply(commits, on: connection)
    }

    /// Cancels plans created more than `--plan-hold` ago and never started (`not_started`):
    /// their recommendations leave the active set, so they stop blocking new ones.
    private func cancelHeldPlans(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let now = try RedisClock.now(connection)
        let cutoffMs = Int(now.timeIntervalSince1970 * 1000) - context.configuration.planHold * 1000
        let due = try connection.send("ZRANGEBYSCORE", keys.heldPlans, "-inf", cutoffMs, "LIMIT", 0, 200)
        let ids = (due.array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return }
        var reads: [RedisCommand] = []
        for id in ids {
            reads.append(RedisCommand("GET", keys.plan(id)))
            reads.append(RedisCommand("EXISTS", keys.planQueued(id)))
        }
        let replies = try connection.pipeline(reads)
        var plans: [(bytes: [UInt8], plan: ExecutionPlan)] = []
        var commits: [Commit] = []
        for (offset, id) in ids.enumerated() {
            guard let bytes = replies[offset * 2].bytes,
                  let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)),
                  plan.status == .pending, replies[offset * 2 + 1].integer == 0 else {
                var commit = Commit()
                context.store.dropHeldEntry(id, into: &commit)
                commits.append(commit)
                continue
            }
            plans.append((bytes, plan))
        }
        let records = plans.isEmpty ? [] : try connection.pipeline(plans.map {
            RedisCommand("HGET", keys.active(customer: $0.plan.customerID), $0.plan.recommendationID)
        })
        for ((bytes, plan), recordReply) in zip(plans, records) {
            var commit = Commit()
            // Not started meanwhile: the plan as read, and no queued marker.
            commit.require(keys.plan(plan.id), .equals(bytes))
            commit.require(keys.planQueued(plan.id), .absent)
            let record = recordReply.bytes.flatMap { try? RecommendationRecord.decode($0) }
            context.store.cancelHeldPlan(plan, record: record, now: now, into: &commit)
            context.logger.info("plan cancelled: not started within --plan-hold", metadata: ["plan_id": "\(plan.id)"])
            commits.append(commit)
        }
        _ = try Commit.apply(commits, on: connection)
    }

    /// Hands the in-flight messages of workers whose heartbeat lapsed back to their queues.
    /// Each worker names its in-flight lists in a hash, so no keyspace scan is needed.
    private func recoverLapsedWorkers(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string)
        let others = workers.filter { $0 != context.workerID }
        guard !others.isEmpty else { return }
        let alive = try connection.pipeline(others.map { RedisCommand("EXISTS", keys.worker($0)) })
        for (worker, exists) in zip(others, alive) where exists.integer == 0 {
            var moved = 0
            let lists = (try connection.send("HGETALL", keys.inflightLists(worker: worker)).array ?? []).compactMap(\.string)
            var index = 0
            while index + 1 < lists.count {
                moved += try HandBack.run(inflight: lists[index], queue: lists[index + 1], context: context, connection: connection)
                index += 2
            }
            // Forgotten only if its lists stayed empty: one that was frozen, not dead, may have
            // thawed and taken a batch meanwhile, and must stay recoverable.
            let forgotten = try connection.run(Scripts.forgetWorker, keys: [keys.inflightLists(worker: worker), keys.workerIndex],
                                               args: [worker]).integer == 1
            context.logger.warning("recovered a lapsed worker's in-flight messages",
                                   metadata: ["worker": "\(worker)", "messages": "\(moved)", "forgotten": "\(forgotten)"])
        }
    }
}
