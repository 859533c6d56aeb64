import Coordination
import Foundation
import RedisClient

/// Approval expiry (PROTOCOL.md section 3): a pending approval past its `expires_at` becomes
/// `expired`, within about a second, and its recommendation leaves the active set. Swept by
/// every daemon's housekeeping; the commit's guard makes each approval expire once.
struct ApprovalExpiry {
    let context: DaemonContext

    /// Turns pending approvals past their expiry into `expired`, within about a second.
    func sweep(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let now = try RedisClock.now(connection)
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        let ids = try Sweep.due(keys.pendingApprovals, untilMs: nowMs, limit: 500, connection)
        guard !ids.isEmpty else { return }
        let stored = try connection.pipeline(ids.map { RedisCommand("GET", keys.approval($0)) })
        var approvals: [(bytes: [UInt8], approval: Approval)] = []
        var commits: [Commit] = []
        for (id, reply) in zip(ids, stored) {
            guard let (bytes, approval) = reply.stored(Approval.self) else {
                // An index entry without its approval: nothing to expire, drop the entry.
                var commit = Commit()
                context.store.dropPendingEntry(id, into: &commit)
                commits.append(commit)
                continue
            }
            approvals.append((bytes, approval))
        }
        let records = try Sweep.activeRecords(approvals.map { ($0.approval.customerID, $0.approval.recommendationID) },
                                              keys: keys, connection)
        for ((bytes, approval), record) in zip(approvals, records) {
            var commit = Commit()
            commit.require(keys.approval(approval.id), .equals(bytes))
            let transition = context.configuration.policy.expire(approval, now: now)
            // Still pending but not yet due (the index rounds to ms): the next sweep gets it.
            if transition == nil && approval.status == .pending { continue }
            if let transition {
                context.store.decide(transition.approval, into: &commit)
                context.events.emit(transition.events, at: now, into: &commit)
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
}
