import Coordination
import Foundation
import RedisClient

/// The daemon's Redis state behind named changes. Handlers, the executor and housekeeping
/// say what happened (keep these recommendations, start this plan, retire that one) and the
/// store spells the writes into a `Commit`; `Keys` spells the keys. Every write here has a
/// bound (docs/OPERATING.md "Key layout": TTL, cap, or the life of something live).
struct Store: Sendable {
    let keys: Keys
    let configuration: DaemonConfiguration
    let events: EventEmitter
    /// On a cluster, the partition's outbox: `coordinate.lua` puts replies there (section 11).
    var outbox: String? = nil

    // MARK: - Recommendations

    /// The index sets one recommendation belongs to, with their fields in the customer's
    /// versions hash.
    func indexes(of rec: Recommendation, customer: String) -> (sets: [String], versions: [String]) {
        var sets: [String] = []
        var versions: [String] = []
        if rec.affectedResources.isEmpty {
            sets.append(keys.wideIndex(customer: customer))
            versions.append(Keys.wideVersion)
        } else {
            for resource in Set(rec.affectedResources) {
                sets.append(keys.resourceIndex(customer: customer, resource: resource))
                versions.append(Keys.resourceVersion(resource))
            }
        }
        sets.append(keys.actionIndex(customer: customer, action: rec.action))
        versions.append(Keys.actionVersion(rec.action))
        return (sets, versions)
    }

    /// Makes recommendations active: the record in the customer's active hash, its id in the
    /// index sets of its resources (or the customer-wide set) and of its action, and a new
    /// `token` on every version field touched, so concurrent requests that read those indexes
    /// compute again.
    func keepRecommendations(_ records: [RecommendationRecord], customer: String, token: [UInt8],
                             into commit: inout Commit) {
        guard !records.isEmpty else { return }
        let entries = indexEntries(of: records, customer: customer)
        commit.writeChunked("HSET", keys.active(customer: customer), entries.records)
        for (set, ids) in entries.members.sorted(by: { $0.key < $1.key }) { commit.writeChunked("SADD", set, ids) }
        commit.writeChunked("HSET", keys.versions(customer: customer), entries.bumped.sorted().flatMap { [$0, token] as [any RedisArgument] })
    }

    /// Replaces an active recommendation's record (status, plan id); indexes are unchanged.
    func updateActive(_ record: RecommendationRecord, customer: String, into commit: inout Commit) {
        commit.write("HSET", keys.active(customer: customer), record.recommendation.id, record.encoded())
    }

    /// Takes a recommendation out of its customer's active set and indexes for good
    /// (rejected, expired, its plan ended), keeps its last state readable for `--retention`
    /// along with its approval and plan, and wakes the plans that were waiting on it.
    /// `planStored`: the same commit writes the plan in its final state (with its retention).
    func retire(customer: String, recommendationID: String, record: RecommendationRecord?,
                status: RecommendationStatus, planID: String? = nil, approvalID: String? = nil,
                planStored: Bool = false, into commit: inout Commit) {
        let retention = configuration.retention
        commit.write("HDEL", keys.active(customer: customer), recommendationID)
        if var record {
            let (sets, versions) = indexes(of: record.recommendation, customer: customer)
            for (set, version) in zip(sets, versions) {
                commit.write("UNINDEX", set, recommendationID, keys.versions(customer: customer), version)
            }
            record.recommendation.status = status
            commit.write("SET", keys.recommendation(customer: customer, id: recommendationID),
                         record.encoded(), "EX", retention)
        }
        if let approval = approvalID ?? record?.approvalID {
            commit.write("EXPIRE", keys.approval(approval), retention)
        }
        if let plan = planID ?? record?.planID {
            if !planStored { commit.write("EXPIRE", keys.plan(plan), retention) }
            commit.write("EXPIRE", keys.planQueued(plan), retention)
            commit.write("ZREM", keys.heldPlans, plan)
        }
        commit.wake(keys.waiters(customer: customer, recommendation: recommendationID), onto: keys.readyPlans)
    }

    // MARK: - Approvals

    /// A new pending approval, indexed by expiry for the sweeper and for `list_approvals`.
    func requestApproval(_ approval: Approval, into commit: inout Commit) {
        let expiresMs = Int(approval.expiresAt.timeIntervalSince1970 * 1000)
        commit.write("SET", keys.approval(approval.id), WireJSON.bytes(approval))
        commit.write("ZADD", keys.pendingApprovals, expiresMs, approval.id)
        commit.write("ZADD", keys.pendingApprovals(customer: approval.customerID), expiresMs, approval.id)
    }

    /// An approval's new state (partly approved, approved, rejected, expired). A final one
    /// leaves the pending indexes; a rejected or expired one lives `--retention` more (an
    /// approved one lives as long as its recommendation, then as long again: see `retire`).
    func decide(_ approval: Approval, into commit: inout Commit) {
        commit.write("SET", keys.approval(approval.id), WireJSON.bytes(approval))
        if approval.status != .pending {
            commit.write("ZREM", keys.pendingApprovals, approval.id)
            commit.write("ZREM", keys.pendingApprovals(customer: approval.customerID), approval.id)
        }
    }

    /// The sweeper's view of an index entry with no approval behind it.
    func dropPendingEntry(_ approvalID: String, into commit: inout Commit) {
        commit.write("ZREM", keys.pendingApprovals, approvalID)
    }

    // MARK: - Plans

    /// Writes a plan as it now is; a plan in a final state lives `--retention` more.
    func storePlan(_ plan: ExecutionPlan, into commit: inout Commit) {
        if plan.status.isFinal {
            commit.write("SET", keys.plan(plan.id), WireJSON.bytes(plan), "EX", configuration.retention)
        } else {
            commit.write("SET", keys.plan(plan.id), WireJSON.bytes(plan))
        }
    }

    /// A new plan: queued at once (`execute_now`) or held until `execute_plan`, for at most
    /// `--plan-hold` (the held index is swept by housekeeping).
    func createPlan(_ plan: ExecutionPlan, executeNow: Bool, into commit: inout Commit) {
        storePlan(plan, into: &commit)
        if executeNow {
            queuePlan(plan.id, into: &commit)
        } else {
            commit.write("ZADD", keys.heldPlans, Int(plan.createdAt.timeIntervalSince1970 * 1000), plan.id)
        }
    }

    /// Hands a plan to the executors, once (the queued marker is the "started" flag).
    func queuePlan(_ planID: String, into commit: inout Commit) {
        commit.write("SET", keys.planQueued(planID), "1")
        commit.write("ZREM", keys.heldPlans, planID)
        commit.write("LPUSH", keys.readyPlans, planID)
    }

    /// Parks a plan until `dependency` ends.
    func waitForDependency(_ planID: String, customer: String, dependency: String, into commit: inout Commit) {
        commit.write("SADD", keys.waiters(customer: customer, recommendation: dependency), planID)
    }

    /// The customer's burst lock, held by the commit that carries this, is given up.
    func releaseCustomerLock(_ customer: String, into commit: inout Commit) {
        commit.write("DEL", keys.customerLock(customer))
    }

    /// A plan starts (or is taken over) under this worker's lease.
    func takeLease(_ planID: String, worker: String, leaseMs: Int, deadlineMs: Int, into commit: inout Commit) {
        commit.write("SET", keys.planLease(planID), worker, "PX", leaseMs)
        commit.write("ZADD", keys.runningPlans, deadlineMs, planID)
    }

    /// A plan ended: its lease, step attempt, running entry and results mailbox go, and its
    /// recommendation is retired (waking its dependents). The plan itself was written in its
    /// final state by the same commit (`storePlan`, with its retention).
    func finishPlan(_ plan: ExecutionPlan, record: RecommendationRecord?, status: ExecutionStatus, into commit: inout Commit) {
        // One DEL for the three (one slot: they share the plan's tag).
        commit.write("DEL", keys.planLease(plan.id), keys.stepAttempt(plan.id), keys.planResults(plan.id))
        commit.write("ZREM", keys.runningPlans, plan.id)
        let recommendationStatus: RecommendationStatus = switch status {
        case .completed: .completed
        case .rolledBack: .rolledBack
        case .cancelled: .cancelled
        default: .failed
        }
        retire(customer: plan.customerID, recommendationID: plan.recommendationID, record: record,
               status: recommendationStatus, planID: plan.id, planStored: true, into: &commit)
    }

    /// Drops a running-index entry whose plan is gone or no longer running.
    func dropRunningEntry(_ planID: String, into commit: inout Commit) {
        commit.write("ZREM", keys.runningPlans, planID)
    }

    /// An approved plan nobody started within `--plan-hold`: cancelled (`not_started`), its
    /// recommendation retired.
    func cancelHeldPlan(_ plan: ExecutionPlan, record: RecommendationRecord?, now: Date, into commit: inout Commit) {
        var machine = PlanMachine(plan: plan)
        let emitted = machine.cancel(reason: "not_started", now: now)
        storePlan(machine.plan, into: &commit)
        events.emit(emitted, at: now, into: &commit)
        commit.write("ZREM", keys.heldPlans, plan.id)
        retire(customer: plan.customerID, recommendationID: plan.recommendationID, record: record,
               status: .cancelled, planID: plan.id, planStored: true, into: &commit)
    }

    /// A plan-hold index entry whose plan is gone, started or no longer pending.
    func dropHeldEntry(_ planID: String, into commit: inout Commit) {
        commit.write("ZREM", keys.heldPlans, planID)
    }

    // MARK: - Step attempts (agents executor)

    /// A step goes to its agent's list, and its attempt is kept `keepMs` (past the deadline,
    /// so that a takeover can still withdraw the step).
    /// On a cluster the agent's list is in another slot: the step goes to the partition's step
    /// outbox, and `OutboxMover` takes it there.
    func sendStep(_ attempt: StepAttempt, planID: String, keepMs: Int, into commit: inout Commit) {
        if outbox != nil {
            commit.write("LPUSH", keys.stepOutbox, StepOutbox.entry(attempt, withdraw: false))
        } else {
            commit.write("LPUSH", attempt.list, attempt.message)
        }
        commit.write("SET", keys.stepAttempt(planID), attempt.encoded(), "PX", keepMs)
    }

    /// A plan's step attempt is over (answered, timed out, the plan ended or was taken over):
    /// no later result is taken for it. With `withdrawing`, the step message also leaves the
    /// agent's list if no agent took it yet, so it never runs late.
    func closeStep(planID: String, withdrawing attempt: StepAttempt? = nil, into commit: inout Commit) {
        if let attempt {
            if outbox != nil {
                commit.write("LPUSH", keys.stepOutbox, StepOutbox.entry(attempt, withdraw: true))
            } else {
                commit.write("LREM", attempt.list, 0, attempt.message)
            }
        }
        commit.write("DEL", keys.stepAttempt(planID))
    }

    /// A message held in a list (a step result in flight or in a plan's mailbox) is done with.
    func release(_ message: [UInt8], from list: String, into commit: inout Commit) {
        commit.write("LREM", list, -1, message)
    }

    /// A result an agent sent for a plan this daemon does not run, for the daemon that does;
    /// it lives no longer than a step can wait.
    func mail(_ raw: [UInt8], toPlan planID: String, into commit: inout Commit) {
        commit.write("LPUSH", keys.planResults(planID), raw)
        commit.write("EXPIRE", keys.planResults(planID), Int(min(configuration.stepTimeout, 86_400 * 30)) + 3600)
    }
}
