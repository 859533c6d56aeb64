import Coordination
import Foundation
import RedisClient

/// The leases of running plans (PROTOCOL.md section 5), kept by Redis's clock: renews ours
/// every third of `--plan-lease`, and takes over plans whose worker died (their lease lapsed),
/// rolling back what was done (`worker_lost`).
struct Leases {
    let book: PlanBook

    private var context: DaemonContext { book.context }
    private var keys: Keys { book.keys }

    /// Renews the lease of every plan running here; a plan whose lease is gone is dropped.
    func renew(_ connection: RedisConnection, now: Date) throws(RedisError) {
        guard !book.running.isEmpty else { return }
        let ids = Array(book.running.keys)
        let replies = try connection.pipeline(ids.map {
            Scripts.renewLease.command(keys: [keys.planLease($0), keys.runningPlans],
                                       args: [book.owner, book.leaseMs, $0, book.deadlineMs(now)])
        })
        var handed: [Commit] = []
        for (id, reply) in zip(ids, replies) where reply.integer != 1 {
            context.logger.warning("lease lost; leaving the plan to its new owner", metadata: ["plan_id": "\(id)"])
            // A result held for it goes where the new owner looks, not left in this lane's
            // in-flight list.
            if let plan = book.running[id], let commit = book.handOver(plan, id: id) { handed.append(commit) }
            book.running[id] = nil
        }
        _ = try Commit.apply(handed, on: connection)
    }

    /// Plans leased under this lane's name that it does not run: on a cluster, a partition's
    /// lane started anew under the same name on the master its slot now has (a failover, a
    /// resharding), or after an outage. They continue from what Redis holds (as after a failed
    /// commit: `PlanRunner.reload` restores the step they wait on), rather than lapse and be
    /// rolled back as a dead worker's plans are. Reads every running plan's lease once, so it is
    /// run when the lane (re)connects, not every tick.
    func resumeOwn(_ connection: RedisConnection) throws(RedisError) {
        let ids = (try connection.send("ZRANGE", keys.runningPlans, 0, -1).array ?? []).compactMap(\.string)
            .filter { book.running[$0] == nil }
        guard !ids.isEmpty else { return }
        let replies = try connection.pipeline(ids.flatMap { [RedisCommand("GET", keys.planLease($0)), RedisCommand("GET", keys.plan($0))] })
        var plans: [ExecutionPlan] = []
        for offset in ids.indices where replies[offset * 2].bytes == book.ownerBytes {
            guard let (_, plan) = replies[offset * 2 + 1].stored(ExecutionPlan.self), plan.status == .running else { continue }
            plans.append(plan)
        }
        guard !plans.isEmpty else { return }
        let records = try connection.pipeline(plans.map { RedisCommand("HGET", keys.active(customer: $0.customerID), $0.recommendationID) })
        for (plan, record) in zip(plans, records) {
            book.running[plan.id] = RunningPlan(machine: PlanMachine(plan: plan), record: record.record)
            book.needsReload.insert(plan.id)
            context.logger.info("resuming a plan leased under this lane's name", metadata: ["plan_id": "\(plan.id)"])
        }
    }

    /// Plans whose worker died: their lease lapsed. Take them over and roll back what was done.
    func takeOverLapsed(_ connection: RedisConnection, now: Date) throws(RedisError) {
        let free = book.capacity - book.running.count
        guard free > 0 else { return }
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        let due = try connection.send("ZRANGEBYSCORE", keys.runningPlans, "-inf", nowMs, "LIMIT", 0, free)
        let ids = (due.array ?? []).compactMap(\.string).filter { book.running[$0] == nil }
        guard !ids.isEmpty else { return }
        let replies = try connection.pipeline(ids.map {
            [RedisCommand("EXISTS", keys.planLease($0)), RedisCommand("GET", keys.plan($0)), RedisCommand("GET", keys.stepAttempt($0))]
        }.flatMap { $0 })
        var commits: [Commit] = []
        var machines: [PlanMachine] = []
        for (offset, id) in ids.enumerated() {
            guard replies[offset * 3].integer == 0 else { continue }
            guard let (bytes, plan) = replies[offset * 3 + 1].stored(ExecutionPlan.self), plan.status == .running else {
                var commit = Commit()
                context.store.dropRunningEntry(id, into: &commit)
                commits.append(commit)
                continue
            }
            var machine = PlanMachine(plan: plan)
            let events = machine.abandon(reason: "worker_lost", now: now)
            var commit = Commit()
            commit.require(keys.planLease(id), .absent)
            commit.require(keys.plan(id), .equals(bytes))
            // The lost worker's step is withdrawn from its agent's list, so it never runs late,
            // and no result of it is taken any more.
            context.store.closeStep(planID: id, withdrawing: replies[offset * 3 + 2].bytes.flatMap(StepAttempt.decode),
                                    into: &commit)
            context.store.takeLease(id, worker: book.owner, leaseMs: book.leaseMs, deadlineMs: book.deadlineMs(now), into: &commit)
            book.write(machine.plan, events: events, into: &commit, now: now)
            if case .finished(let status) = machine.nextAction() {
                // Nothing to roll back: the takeover itself ends the plan.
                let record = try? connection.send("HGET", keys.active(customer: plan.customerID), plan.recommendationID)
                    .bytes.flatMap { try RecommendationRecord.decode($0) }
                book.finish(plan: machine.plan, record: record, status: status, into: &commit)
            }
            commits.append(commit)
            machines.append(machine)
        }
        try run(commits, taking: machines, connection)
    }

    /// Applies the takeovers and runs the plans whose takeover applied and that have steps to
    /// roll back. `machines` follow the guarded commits in order (the guardless ones only drop
    /// an index entry).
    private func run(_ commits: [Commit], taking machines: [PlanMachine], _ connection: RedisConnection) throws(RedisError) {
        guard !commits.isEmpty else { return }
        let results = try Commit.apply(commits, on: connection)
        let records = try connection.pipeline(machines.map {
            RedisCommand("HGET", keys.active(customer: $0.plan.customerID), $0.plan.recommendationID)
        })
        var machineIndex = 0
        for (commit, result) in zip(commits, results) where !commit.isGuardless {
            defer { machineIndex += 1 }
            guard result == .applied else { continue }
            let machine = machines[machineIndex]
            if case .finished = machine.nextAction() { continue }
            book.running[machine.plan.id] = RunningPlan(machine: machine, record: records[machineIndex].record)
            context.logger.warning("took over a plan whose worker was lost; rolling it back", metadata: ["plan_id": "\(machine.plan.id)"])
        }
    }
}
