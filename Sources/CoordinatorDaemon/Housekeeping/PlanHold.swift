import Coordination
import Foundation
import RedisClient

/// Plan hold (PROTOCOL.md section 9): an approved plan never started within `--plan-hold` of
/// its creation is cancelled (`not_started`), so its recommendation stops blocking new ones.
/// Swept by every daemon's housekeeping; the commit's guards make each plan end once.
struct PlanHold {
    let context: DaemonContext

    /// Cancels plans created more than `--plan-hold` ago and never started (`not_started`):
    /// their recommendations leave the active set, so they stop blocking new ones.
    func sweep(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let now = try RedisClock.now(connection)
        let cutoffMs = Int(now.timeIntervalSince1970 * 1000) - context.configuration.planHold * 1000
        let ids = try Sweep.due(keys.heldPlans, untilMs: cutoffMs, limit: 200, connection)
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
            guard let (bytes, plan) = replies[offset * 2].stored(ExecutionPlan.self),
                  plan.status == .pending, replies[offset * 2 + 1].integer == 0 else {
                var commit = Commit()
                context.store.dropHeldEntry(id, into: &commit)
                commits.append(commit)
                continue
            }
            plans.append((bytes, plan))
        }
        let records = try Sweep.activeRecords(plans.map { ($0.plan.customerID, $0.plan.recommendationID) }, keys: keys, connection)
        for ((bytes, plan), record) in zip(plans, records) {
            var commit = Commit()
            // Not started meanwhile: the plan as read, and no queued marker.
            commit.require(keys.plan(plan.id), .equals(bytes))
            commit.require(keys.planQueued(plan.id), .absent)
            context.store.cancelHeldPlan(plan, record: record, now: now, into: &commit)
            context.logger.info("plan cancelled: not started within --plan-hold", metadata: ["plan_id": "\(plan.id)"])
            commits.append(commit)
        }
        _ = try Commit.apply(commits, on: connection)
    }
}
