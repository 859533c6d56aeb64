import Coordination
import Foundation
import RedisClient

/// Advances the running plans one transition each, dispatching steps, and writes them all in
/// one pipeline of commits guarded by each plan's lease; reads a plan again from Redis after
/// a commit of it failed.
struct PlanRunner {
    let book: PlanBook
    let dispatcher: any StepDispatcher

    private var context: DaemonContext { book.context }
    private var keys: Keys { book.keys }

    /// What a plan becomes when its commit is applied; adopted only then, so that the memory of
    /// a plan is never ahead of Redis.
    private struct Transition {
        var machine: PlanMachine
        var wait: PlanWait?
        var consumedArrival: Bool
    }

    /// The pause before a plan whose commits Redis refused `count` times in a row is tried
    /// again: 0.1 s, doubling, at most 5 s (a broken key costs a few commits a second, not
    /// one per tick).
    static func retryPause(after count: Int) -> TimeInterval {
        Backoff.pause(after: count, first: 0.1, max: 5)
    }

    /// Advances every plan due by one transition and writes them in one pipeline; each plan
    /// adopts its transition only once its commit is applied. Returns whether any was written.
    func advanceAll(_ connection: RedisConnection, now: Date) throws(RedisError) -> Bool {
        var commits: [(String, Commit, Transition)] = []
        for (id, plan) in book.running where plan.retryAt.map({ now >= $0 }) ?? true {
            if let (commit, transition) = advance(plan, now: now) {
                commits.append((id, commit, transition))
            }
        }
        guard !commits.isEmpty else { return false }
        let results = try applyIsolated(commits.map(\.1), on: connection, plans: commits.map(\.0))
        for ((id, _, transition), outcome) in zip(commits, results) {
            guard let plan = book.running[id] else { continue }
            guard outcome == .applied else {
                notApplied(plan, id: id, outcome, now: now)
                continue
            }
            plan.refused = nil
            plan.retryAt = nil
            plan.machine = transition.machine
            plan.wait = transition.wait
            if transition.consumedArrival { plan.arrived = nil }
            if case .finished = plan.machine.nextAction() {
                book.running[id] = nil
                book.finished(plan.machine.plan)
            }
        }
        return true
    }

    /// The lease is gone or the commit failed: what Redis holds decides.
    private func notApplied(_ plan: RunningPlan, id: String, _ outcome: Commit.Result, now: Date) {
        if case .failed(let message) = outcome {
            let count = (plan.refused?.count ?? 0) + 1
            plan.refused = (plan.refused?.since ?? now, count, message)
            plan.retryAt = now.addingTimeInterval(Self.retryPause(after: count))
            context.logger.error("Redis refused a plan's commit; reading it again", metadata: [
                "plan_id": "\(id)", "error": "\(message)", "attempts": "\(count)"])
        } else {
            context.logger.warning("a plan's commit was not applied; reading it again", metadata: ["plan_id": "\(id)"])
        }
        book.needsReload.insert(id)
    }

    /// One transition of a plan, as a commit guarded by our lease and what the plan becomes
    /// once it is applied; nil when it is waiting. The plan itself is not changed here.
    private func advance(_ running: RunningPlan, now: Date) -> (Commit, Transition)? {
        var commit = Commit()
        var events: [DomainEvent] = []
        var machine = running.machine
        var wait = running.wait
        var consumedArrival = false
        let planID = machine.plan.id
        if let current = wait {
            var outcome: StepOutcome?
            var timedOut = false
            if let arrived = running.arrived {
                outcome = arrived.outcome
                consumedArrival = true
                if let ack = arrived.ack { context.store.release(ack.message, from: ack.list, into: &commit) }
            } else if let known = current.outcome, now >= current.due {
                outcome = known
            } else if current.outcome == nil, now >= current.due {
                outcome = .failure("no answer from the agent within \(context.configuration.stepTimeout) s (--step-timeout)")
                timedOut = true
            }
            guard let outcome else { return nil }
            // The attempt is answered (or withdrawn, when it timed out): no later result counts.
            if current.attempt != nil {
                context.store.closeStep(planID: planID, withdrawing: timedOut ? current.attempt : nil, into: &commit)
            }
            wait = nil
            events += apply(outcome, to: &machine, index: current.index, rollback: current.rollback, now: now)
        } else {
            guard let next = nextStep(running, &machine, &wait, now: now, into: &commit) else { return nil }
            events += next
        }
        commit.require(keys.planLease(planID), .equals(book.ownerBytes))
        book.write(machine.plan, events: events, into: &commit, now: now)
        if case .finished(let status) = machine.nextAction() {
            book.finish(plan: machine.plan, record: running.record, status: status, into: &commit)
        }
        return (commit, Transition(machine: machine, wait: wait, consumedArrival: consumedArrival))
    }

    /// The next action of a plan waiting on nothing: its events, or nil when it already
    /// finished on a transition written before (nothing left to write). Its writes go into
    /// `commit`, which the caller guards (and in which it writes the plan).
    func nextStep(_ running: RunningPlan, _ machine: inout PlanMachine, _ wait: inout PlanWait?, now: Date,
                          into commit: inout Commit) -> [DomainEvent]? {
        let unsendable = running.refused.flatMap { refused in
            now.timeIntervalSince(refused.since) >= context.configuration.stepTimeout
                ? "the step could not be sent within \(context.configuration.stepTimeout) s (--step-timeout): \(refused.error)"
                : nil
        }
        switch machine.nextAction() {
        case .runStep(let index):
            var events = machine.stepStarted(index, now: now)
            if let unsendable {
                events += apply(.failure(unsendable), to: &machine, index: index, rollback: false, now: now)
            } else {
                events += dispatch(&machine, &wait, index: index, rollback: false, now: now, into: &commit)
            }
            return events
        case .rollbackStep(let index):
            if let unsendable {
                return apply(.failure(unsendable), to: &machine, index: index, rollback: true, now: now)
            }
            return dispatch(&machine, &wait, index: index, rollback: true, now: now, into: &commit)
        case .start:
            return machine.start(now: now)
        case .finished:
            return nil
        }
    }

    private func dispatch(_ machine: inout PlanMachine, _ wait: inout PlanWait?, index: Int, rollback: Bool, now: Date,
                          into commit: inout Commit) -> [DomainEvent] {
        let plan = machine.plan
        switch dispatcher.dispatch(plan, step: index, rollback: rollback, now: now) {
        case .done(let outcome):
            return apply(outcome, to: &machine, index: index, rollback: rollback, now: now)
        case .due(let due, let outcome):
            wait = PlanWait(index: index, rollback: rollback, stepID: plan.steps[index].id, due: due, outcome: outcome)
            return []
        case .sent(let attempt):
            // Lives past the deadline by a lease, so a takeover can still withdraw the step.
            let keepMs = max(1, attempt.deadlineMs - Int(now.timeIntervalSince1970 * 1000)) + book.leaseMs + 60_000
            context.store.sendStep(attempt, planID: plan.id, keepMs: keepMs, into: &commit)
            wait = PlanWait(index: index, rollback: rollback, stepID: attempt.stepID, due: attempt.deadline, outcome: nil,
                            attempt: attempt)
            return []
        }
    }

    private func apply(_ outcome: StepOutcome, to machine: inout PlanMachine, index: Int, rollback: Bool, now: Date) -> [DomainEvent] {
        switch (outcome, rollback) {
        case (.success(let result, let rollbackData), false):
            return machine.stepSucceeded(index, result: result, rollbackData: rollbackData, now: now)
        case (.failure(let error), false):
            return machine.stepFailed(index, error: error, now: now)
        case (.success, true):
            return machine.rollbackSucceeded(index, now: now)
        case (.failure(let error), true):
            return machine.rollbackFailed(index, error: error, now: now)
        }
    }

    /// Applies the plans' commits; when Redis answers the batch with an error (a key of the
    /// wrong type under one plan), each commit is tried alone so that one plan's failure stays
    /// its own. A commit that fails alone counts as not applied (its plan is read again).
    private func applyIsolated(_ commits: [Commit], on connection: RedisConnection, plans: [String]) throws(RedisError) -> [Commit.Result] {
        do {
            return try Commit.apply(commits, on: connection)
        } catch {
            guard case .server = error else {
                book.needsReload.formUnion(plans)
                throw error
            }
            var results: [Commit.Result] = []
            for (commit, plan) in zip(commits, plans) {
                do {
                    results.append(contentsOf: try Commit.apply([commit], on: connection))
                } catch {
                    guard case .server(let message) = error else {
                        book.needsReload.formUnion(plans)
                        throw error
                    }
                    context.logger.error("a plan's commit failed", metadata: ["plan_id": "\(plan)", "error": "\(message)"])
                    results.append(.stale)
                }
            }
            return results
        }
    }

    /// Reads the plans whose commit failed from Redis: those whose lease is no longer ours are
    /// left to their owner; the others continue from the stored plan and outstanding attempt.
    func reload(_ connection: RedisConnection) throws(RedisError) {
        let ids = book.needsReload.filter { book.running[$0] != nil }
        book.needsReload.removeAll()
        guard !ids.isEmpty else { return }
        let ordered = Array(ids)
        let replies = try connection.pipeline(ordered.map {
            [RedisCommand("GET", keys.planLease($0)), RedisCommand("GET", keys.plan($0)), RedisCommand("GET", keys.stepAttempt($0))]
        }.flatMap { $0 })
        var acks: [Commit] = []
        for (offset, id) in ordered.enumerated() {
            guard let plan = book.running[id] else { continue }
            guard replies[offset * 3].bytes == book.ownerBytes,
                  let (_, stored) = replies[offset * 3 + 1].stored(ExecutionPlan.self), stored.status == .running else {
                context.logger.warning("a plan is no longer ours to run; left to Redis's state", metadata: ["plan_id": "\(id)"])
                // The result is the new owner's to take: it goes where that daemon looks.
                if let commit = book.handOver(plan, id: id) { acks.append(commit) }
                book.running[id] = nil
                continue
            }
            let machine = PlanMachine(plan: stored)
            let wait = replies[offset * 3 + 2].bytes.flatMap(StepAttempt.decode).flatMap { Self.outstanding($0, of: machine) }
            if let arrived = plan.arrived, arrived.attempt != wait?.attempt?.token {
                if let ack = arrived.ack { acks.append(book.ack(ack)) }
                plan.arrived = nil
            }
            plan.machine = machine
            plan.wait = wait
            context.logger.info("plan read again from Redis", metadata: ["plan_id": "\(id)", "waiting": "\(wait != nil)"])
        }
        _ = try Commit.apply(acks, on: connection)
    }

    /// The wait on `record` when it is the attempt the stored plan is at, or nil.
    private static func outstanding(_ record: StepAttempt, of machine: PlanMachine) -> PlanWait? {
        let outstanding: Bool = switch machine.nextAction() {
        case .runStep(let index): index == record.index && !record.rollback && machine.plan.steps[index].status == .running
        case .rollbackStep(let index): index == record.index && record.rollback
        default: false
        }
        guard outstanding else { return nil }
        return PlanWait(index: record.index, rollback: record.rollback, stepID: record.stepID, due: record.deadline,
                        outcome: nil, attempt: record)
    }
}
