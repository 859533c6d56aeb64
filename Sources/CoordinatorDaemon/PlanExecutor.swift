import Coordination
import Foundation
import Logging
import RedisClient

/// Runs execution plans (PROTOCOL.md section 5) on a thread of its own, up to
/// `--max-concurrent-plans` at once, never in the way of intake.
///
/// Each tick takes plans from `coord:plans:ready`, advances every running plan by one
/// transition, and writes all of them in one pipeline of commits guarded by the plan's lease:
/// a transition is persisted (with its events) before the next step starts, and a daemon that
/// lost a lease can no longer write the plan. Plans whose lease lapsed are taken over and
/// rolled back (`worker_lost`).
final class PlanExecutor: @unchecked Sendable {
    private let context: DaemonContext
    private let dispatcher: any StepDispatcher
    private let readyInflight: String
    private let resultsInflight: String
    private let loop: LoopThread

    // Everything below is touched only by the executor's thread.
    private var running: [String: RunningPlan] = [:]
    /// Ready entries whose examination found stale reads; looked at again next tick.
    private var reexamine: [[UInt8]] = []
    private var lastRenewal = Date.distantPast
    private var lastTakeoverScan = Date.distantPast

    private final class RunningPlan {
        var machine: PlanMachine
        var record: RecommendationRecord?
        var wait: Wait?
        /// A result that arrived for the step being waited on.
        var arrived: (outcome: StepOutcome, ack: (message: [UInt8], list: String))?

        init(machine: PlanMachine, record: RecommendationRecord?) {
            self.machine = machine
            self.record = record
        }
    }

    private struct Wait {
        var index: Int
        var rollback: Bool
        var stepID: String
        var due: Date
        /// Known in advance (simulated); nil when an agent answers.
        var outcome: StepOutcome?
    }

    init(context: DaemonContext) {
        self.context = context
        let config = context.configuration
        switch config.executor {
        case .simulated: dispatcher = SimulatedDispatcher(speed: config.simSpeed)
        case .agents: dispatcher = AgentDispatcher(keys: context.keys, timeout: config.stepTimeout)
        }
        readyInflight = context.keys.inflight(worker: context.workerID, queue: "plans:ready:0")
        resultsInflight = context.keys.inflight(worker: context.workerID, queue: "steps:results:0")
        loop = LoopThread(name: "executor", context: context)
    }

    func start() {
        loop.start { [self] in run() }
    }

    /// Takes no new plans, lets running ones finish for a grace period, and hands the rest to
    /// lease takeover.
    func stop() { loop.stop() }

    private var keys: Keys { context.keys }

    private func run() {
        var handBack = true
        var graceEnds: Date?
        while true {
            if loop.isStopping {
                if graceEnds == nil { graceEnds = Date().addingTimeInterval(min(10, context.configuration.planLease)) }
                if running.isEmpty || Date() > graceEnds! { break }
            }
            do {
                let connection = try loop.currentConnection()
                if handBack {
                    try handBackInflight(connection)
                    handBack = false
                }
                try tick(connection, accepting: !loop.isStopping)
            } catch {
                context.metrics.redisError()
                context.logger.error("executor: Redis unavailable, retrying", metadata: ["error": "\(error)"])
                handBack = true
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        if let connection = loop.openConnection {
            try? handBackInflight(connection)
            if !running.isEmpty {
                context.logger.warning("stopping with plans still running; they are taken over when their lease lapses",
                                       metadata: ["plans": "\(running.keys.sorted())"])
            }
            connection.close()
        }
    }

    private func handBackInflight(_ connection: RedisConnection) throws(RedisError) {
        _ = try connection.send("HSET", keys.inflightLists(worker: context.workerID),
                                readyInflight, keys.readyPlans, resultsInflight, keys.stepResults)
        try HandBack.run(inflight: readyInflight, queue: keys.readyPlans, context: context, connection: connection)
        try HandBack.run(inflight: resultsInflight, queue: keys.stepResults, context: context, connection: connection)
        reexamine.removeAll()
    }

    // MARK: - The tick

    private func tick(_ connection: RedisConnection, accepting: Bool) throws(RedisError) {
        let config = context.configuration
        var now = Date()
        var progressed = false

        if accepting {
            let free = config.maxConcurrentPlans - running.count
            var ids = reexamine
            reexamine.removeAll()
            if free > ids.count {
                let reply = try connection.run(Scripts.takeBatch, keys: [keys.readyPlans, readyInflight], args: [min(free - ids.count, 128)])
                ids += (reply.array ?? []).compactMap(\.bytes)
            }
            if ids.isEmpty && running.isEmpty {
                // Idle: block briefly on the ready list so a new plan starts at once.
                if let id = try connection.blockingMove(from: keys.readyPlans, to: readyInflight, timeout: 0.5) {
                    ids = [id]
                }
            }
            if !ids.isEmpty {
                try examine(ids, connection)
                progressed = true
                now = Date()
            }
        }

        if config.executor == .agents, !running.isEmpty {
            try collectResults(connection, now: now)
        }

        // Advance every plan by one transition; write them all in one pipeline.
        var commits: [(String, Commit)] = []
        for (id, plan) in running {
            if let commit = advance(plan, now: now) {
                commits.append((id, commit))
            }
        }
        if !commits.isEmpty {
            progressed = true
            let results = try Commit.apply(commits.map(\.1), on: connection)
            for ((id, _), outcome) in zip(commits, results) {
                guard let plan = running[id] else { continue }
                if outcome != .applied {
                    context.logger.warning("lost the lease of a plan; another worker has it now", metadata: ["plan_id": "\(id)"])
                    running[id] = nil
                } else if case .finished = plan.machine.nextAction() {
                    running[id] = nil
                    context.counters.add(plansFinished: 1)
                    context.metrics.planFinished(plan.machine.plan.status.rawValue)
                    context.logger.info("plan finished", metadata: ["plan_id": "\(id)", "status": "\(plan.machine.plan.status.rawValue)"])
                }
            }
        }

        context.metrics.plans(running: running.count, waiting: running.values.count { $0.wait != nil && $0.wait?.outcome == nil })
        if now.timeIntervalSince(lastRenewal) >= config.planLease / 3 {
            try renewLeases(connection, now: now)
            lastRenewal = now
        }
        if accepting, now.timeIntervalSince(lastTakeoverScan) >= 1 {
            try takeOverLapsedPlans(connection, now: now)
            lastTakeoverScan = now
        }

        if !progressed && !running.isEmpty {
            // Waiting on timers or agents: sleep until the next is due, briefly.
            let nextDue = running.values.compactMap { $0.wait?.due }.min() ?? now.addingTimeInterval(0.02)
            Thread.sleep(forTimeInterval: max(0.001, min(0.02, nextDue.timeIntervalSince(Date()))))
        }
    }

    // MARK: - Starting plans

    /// Looks at plans handed to the executors: starts those whose dependencies completed,
    /// parks those that must wait, cancels those whose dependencies failed.
    private func examine(_ ids: [[UInt8]], _ connection: RedisConnection) throws(RedisError) {
        let now = Date()
        let planIDs = ids.map { String(decoding: $0, as: UTF8.self) }
        let stored = try connection.pipeline(planIDs.map { RedisCommand("GET", keys.plan($0)) })

        struct Candidate {
            var entry: [UInt8]
            var stored: [UInt8]
            var plan: ExecutionPlan
        }
        var candidates: [Candidate] = []
        var acks: [Commit] = []
        for (index, reply) in stored.enumerated() {
            guard let bytes = reply.bytes, let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)) else {
                context.logger.error("ready plan is missing or unreadable; dropped", metadata: ["plan_id": "\(planIDs[index])"])
                acks.append(Commit(acknowledging: ids[index], in: readyInflight))
                continue
            }
            if plan.status != .pending || running[plan.id] != nil {
                acks.append(Commit(acknowledging: ids[index], in: readyInflight))
                continue
            }
            candidates.append(Candidate(entry: ids[index], stored: bytes, plan: plan))
        }

        // The plan's own recommendation and, for each dependency, its active or final record.
        var reads: [RedisCommand] = []
        for candidate in candidates {
            let plan = candidate.plan
            reads.append(RedisCommand("HGET", keys.active(customer: plan.customerID), plan.recommendationID))
        }
        let records = reads.isEmpty ? [] : try connection.pipeline(reads)
        var dependencyReads: [RedisCommand] = []
        var recordOf: [Int: RecommendationRecord] = [:]
        var dependencyStart: [Int: Int] = [:]
        for (index, candidate) in candidates.enumerated() {
            guard let bytes = records[index].bytes, let record = try? RecommendationRecord.decode(bytes) else { continue }
            recordOf[index] = record
            dependencyStart[index] = dependencyReads.count
            for dependency in record.recommendation.dependencies {
                dependencyReads.append(RedisCommand("HGET", keys.active(customer: candidate.plan.customerID), dependency))
                dependencyReads.append(RedisCommand("GET", keys.recommendation(customer: candidate.plan.customerID, id: dependency)))
            }
        }
        let dependencyReplies = dependencyReads.isEmpty ? [] : try connection.pipeline(dependencyReads)

        // Waiting is guarded by the state key of what is waited on, so a dependency that ends
        // between this read and the commit cannot leave the plan waiting forever.
        var guardReads: [RedisCommand] = []
        var decisions: [(Int, Decision)] = []
        for index in candidates.indices {
            guard let record = recordOf[index] else {
                decisions.append((index, .cancel("its recommendation is no longer active")))
                continue
            }
            var decision = Decision.start
            var waits: [(dependency: String, stateKey: String?)] = []
            let start = dependencyStart[index]!
            for (offset, dependency) in record.recommendation.dependencies.enumerated() {
                let active = dependencyReplies[start + offset * 2].bytes.flatMap { try? RecommendationRecord.decode($0) }
                let done = dependencyReplies[start + offset * 2 + 1].bytes.flatMap { try? RecommendationRecord.decode($0) }
                if let active {
                    let stateKey = active.planID.map(keys.plan) ?? active.approvalID.map(keys.approval)
                    waits.append((dependency, stateKey))
                } else if let done {
                    let status = done.recommendation.status?.rawValue ?? "unknown"
                    if status != "completed" {
                        decision = .cancel("dependency \(dependency) ended \(status)")
                        break
                    }
                } else {
                    decision = .cancel("dependency \(dependency) is unknown")
                    break
                }
            }
            if case .start = decision, !waits.isEmpty {
                var guarded: [(String, Int)] = []
                for wait in waits {
                    if let key = wait.stateKey {
                        guarded.append((key, guardReads.count))
                        guardReads.append(RedisCommand("GET", key))
                    }
                }
                decision = .wait(waits.map(\.dependency), guarded)
            }
            decisions.append((index, decision))
        }
        let guardReplies = guardReads.isEmpty ? [] : try connection.pipeline(guardReads)

        var commits = acks
        var started: [Int: PlanMachine] = [:]
        for (index, decision) in decisions {
            let candidate = candidates[index]
            var commit = Commit(acknowledging: candidate.entry, in: readyInflight)
            commit.require(keys.plan(candidate.plan.id), .equals(candidate.stored))
            var machine = PlanMachine(plan: candidate.plan)
            switch decision {
            case .start:
                commit.require(keys.planLease(candidate.plan.id), .absent)
                let events = machine.start(now: now)
                write(machine.plan, events: events, into: &commit, now: now)
                context.store.takeLease(candidate.plan.id, worker: context.workerID, leaseMs: leaseMs, deadlineMs: deadlineMs(now), into: &commit)
                if var record = recordOf[index] {
                    record.recommendation.status = .executing
                    context.store.updateActive(record, customer: candidate.plan.customerID, into: &commit)
                }
                started[index] = machine
            case .wait(let dependencies, let guarded):
                for (key, at) in guarded {
                    if let bytes = guardReplies[at].bytes { commit.require(key, .equals(bytes)) } else { commit.require(key, .absent) }
                }
                for dependency in dependencies {
                    context.store.waitForDependency(candidate.plan.id, customer: candidate.plan.customerID, dependency: dependency, into: &commit)
                }
                context.logger.info("plan waits for its dependencies", metadata: ["plan_id": "\(candidate.plan.id)", "dependencies": "\(dependencies)"])
            case .cancel(let reason):
                let events = machine.cancel(reason: reason, now: now)
                write(machine.plan, events: events, into: &commit, now: now)
                context.store.retire(customer: candidate.plan.customerID, recommendationID: candidate.plan.recommendationID,
                                     record: recordOf[index], status: .cancelled, planID: candidate.plan.id, into: &commit)
                context.logger.info("plan cancelled", metadata: ["plan_id": "\(candidate.plan.id)", "reason": "\(reason)"])
            }
            commits.append(commit)
        }
        let results = try Commit.apply(commits, on: connection)
        // The first `acks.count` commits only acknowledged; the rest follow `decisions`' order.
        var decisionIndex = 0
        for (offset, result) in results.enumerated() where offset >= acks.count {
            defer { decisionIndex += 1 }
            let index = decisions[decisionIndex].0
            switch result {
            case .applied:
                if let machine = started[index] {
                    running[machine.plan.id] = RunningPlan(machine: machine, record: recordOf[index])
                }
            case .stale:
                reexamine.append(candidates[index].entry)
            case .messageGone:
                break
            case .failed(let message):
                // Back in flight: looked at again next tick, like a stale read.
                context.logger.error("plan commit failed in Redis", metadata: ["plan_id": "\(candidates[index].plan.id)", "error": "\(message)"])
                reexamine.append(candidates[index].entry)
            }
        }
    }

    private enum Decision {
        case start
        case wait([String], [(String, Int)])
        case cancel(String)
    }

    // MARK: - Advancing plans

    /// One transition of a plan, as a commit guarded by our lease; nil when it is waiting.
    private func advance(_ running: RunningPlan, now: Date) -> Commit? {
        var commit = Commit()
        var events: [DomainEvent] = []
        let planID = running.machine.plan.id
        if let wait = running.wait {
            var outcome: StepOutcome?
            if let arrived = running.arrived {
                outcome = arrived.outcome
                commit.write("LREM", arrived.ack.list, 1, arrived.ack.message)
            } else if let known = wait.outcome, now >= wait.due {
                outcome = known
            } else if wait.outcome == nil, now >= wait.due {
                outcome = .failure("no answer from the agent within \(Int(context.configuration.stepTimeout)) s (--step-timeout)")
            }
            guard let outcome else { return nil }
            running.wait = nil
            running.arrived = nil
            events += apply(outcome, to: running, index: wait.index, rollback: wait.rollback, now: now)
        } else {
            switch running.machine.nextAction() {
            case .runStep(let index):
                events += running.machine.stepStarted(index, now: now)
                events += dispatch(running, index: index, rollback: false, now: now, into: &commit)
            case .rollbackStep(let index):
                events += dispatch(running, index: index, rollback: true, now: now, into: &commit)
            case .start:
                events += running.machine.start(now: now)
            case .finished:
                // Finished on a transition already written: nothing left to write.
                return nil
            }
        }
        commit.require(keys.planLease(planID), .equals(Array(context.workerID.utf8)))
        write(running.machine.plan, events: events, into: &commit, now: now)
        if case .finished(let status) = running.machine.nextAction() {
            finish(plan: running.machine.plan, record: running.record, status: status, into: &commit)
        }
        return commit
    }

    private func dispatch(_ running: RunningPlan, index: Int, rollback: Bool, now: Date, into commit: inout Commit) -> [DomainEvent] {
        let plan = running.machine.plan
        switch dispatcher.dispatch(plan, step: index, rollback: rollback, now: now) {
        case .done(let outcome):
            return apply(outcome, to: running, index: index, rollback: rollback, now: now)
        case .due(let due, let outcome):
            running.wait = Wait(index: index, rollback: rollback, stepID: plan.steps[index].id, due: due, outcome: outcome)
            return []
        case .sent(let deadline, let message, let list):
            commit.write("LPUSH", list, message)
            running.wait = Wait(index: index, rollback: rollback, stepID: plan.steps[index].id, due: deadline, outcome: nil)
            return []
        }
    }

    private func apply(_ outcome: StepOutcome, to running: RunningPlan, index: Int, rollback: Bool, now: Date) -> [DomainEvent] {
        switch (outcome, rollback) {
        case (.success(let result, let rollbackData), false):
            return running.machine.stepSucceeded(index, result: result, rollbackData: rollbackData, now: now)
        case (.failure(let error), false):
            return running.machine.stepFailed(index, error: error, now: now)
        case (.success, true):
            return running.machine.rollbackSucceeded(index, now: now)
        case (.failure(let error), true):
            return running.machine.rollbackFailed(index, error: error, now: now)
        }
    }

    private func write(_ plan: ExecutionPlan, events: [DomainEvent], into commit: inout Commit, now: Date) {
        context.store.storePlan(plan, into: &commit)
        context.events.emit(events, at: now, into: &commit)
    }

    /// The plan ended: release it and retire its recommendation, waking its dependents.
    private func finish(plan: ExecutionPlan, record: RecommendationRecord?, status: ExecutionStatus, into commit: inout Commit) {
        context.store.finishPlan(plan, record: record, status: status, into: &commit)
    }

    // MARK: - Agents' results

    /// Takes step results off the shared queue. A result for a plan this daemon runs is
    /// applied on the next commit of that plan (which also acknowledges it); any other goes to
    /// that plan's mailbox, where the daemon running it finds it.
    private func collectResults(_ connection: RedisConnection, now: Date) throws(RedisError) {
        let reply = try connection.run(Scripts.takeBatch, keys: [keys.stepResults, resultsInflight], args: [256])
        var commits: [Commit] = []
        for raw in (reply.array ?? []).compactMap(\.bytes) {
            // Section 10: signed by an agent before anything is read; by the step's own agent once known.
            let admitted = context.trust.admit(raw)
            if let refusal = admitted.refusal ?? context.trust.refusal(stepResultBy: admitted.principal) {
                var commit = Commit(acknowledging: raw, in: resultsInflight)
                context.deadLetter(raw, queue: keys.stepResults, failure: refusal, now: now, in: &commit)
                commits.append(commit)
                continue
            }
            do {
                let result = try StepResultMessage.parse(admitted.message)
                if let plan = running[result.planID], let wait = plan.wait, wait.stepID == result.stepID, plan.arrived == nil {
                    if let refusal = context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) {
                        var commit = Commit(acknowledging: raw, in: resultsInflight)
                        context.deadLetter(raw, queue: keys.stepResults, failure: refusal, now: now, in: &commit)
                        commits.append(commit)
                        continue
                    }
                    plan.arrived = (result.outcome, (raw, resultsInflight))
                    context.metrics.stepResult(nil)
                    continue
                }
                var commit = Commit(acknowledging: raw, in: resultsInflight)
                context.store.mail(raw, toPlan: result.planID, into: &commit)
                commits.append(commit)
                context.metrics.stepResult(nil)
            } catch {
                var commit = Commit(acknowledging: raw, in: resultsInflight)
                context.deadLetter(raw, queue: keys.stepResults, failure: Failure(.invalidRequest, error.description), now: now, in: &commit)
                commits.append(commit)
                context.metrics.stepResult(Failure(.invalidRequest, ""))
            }
        }
        // Mailboxes of the plans waiting on an agent.
        let waiting = running.filter { $0.value.wait != nil && $0.value.wait?.outcome == nil && $0.value.arrived == nil }
        let waitingIDs = Array(waiting.keys)
        if !waitingIDs.isEmpty {
            let mail = try connection.pipeline(waitingIDs.map { RedisCommand("LRANGE", keys.planResults($0), 0, -1) })
            for (id, messages) in zip(waitingIDs, mail) {
                guard let plan = running[id], let wait = plan.wait else { continue }
                for raw in (messages.array ?? []).compactMap(\.bytes) {
                    let admitted = context.trust.admit(raw)
                    guard admitted.refusal == nil, let result = try? StepResultMessage.parse(admitted.message) else { continue }
                    if result.stepID == wait.stepID,
                       context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) == nil {
                        plan.arrived = (result.outcome, (raw, keys.planResults(id)))
                        break
                    }
                }
            }
        }
        _ = try Commit.apply(commits, on: connection)
    }

    // MARK: - Leases

    private var leaseMs: Int { Int(context.configuration.planLease * 1000) }

    private func deadlineMs(_ now: Date) -> Int { Int(now.timeIntervalSince1970 * 1000) + leaseMs }

    private func renewLeases(_ connection: RedisConnection, now: Date) throws(RedisError) {
        guard !running.isEmpty else { return }
        let ids = Array(running.keys)
        let replies = try connection.pipeline(ids.map {
            Scripts.renewLease.command(keys: [keys.planLease($0), keys.runningPlans],
                                       args: [context.workerID, leaseMs, $0, deadlineMs(now)])
        })
        for (id, reply) in zip(ids, replies) where reply.integer != 1 {
            context.logger.warning("lease lost; leaving the plan to its new owner", metadata: ["plan_id": "\(id)"])
            running[id] = nil
        }
    }

    /// Plans whose worker died: their lease lapsed. Take them over and roll back what was done.
    private func takeOverLapsedPlans(_ connection: RedisConnection, now: Date) throws(RedisError) {
        let free = context.configuration.maxConcurrentPlans - running.count
        guard free > 0 else { return }
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        let due = try connection.send("ZRANGEBYSCORE", keys.runningPlans, "-inf", nowMs, "LIMIT", 0, free)
        let ids = (due.array ?? []).compactMap(\.string).filter { running[$0] == nil }
        guard !ids.isEmpty else { return }
        var reads: [RedisCommand] = []
        for id in ids {
            reads.append(RedisCommand("EXISTS", keys.planLease(id)))
            reads.append(RedisCommand("GET", keys.plan(id)))
        }
        let replies = try connection.pipeline(reads)
        var commits: [Commit] = []
        var machines: [PlanMachine] = []
        for (offset, id) in ids.enumerated() {
            guard replies[offset * 2].integer == 0 else { continue }
            guard let bytes = replies[offset * 2 + 1].bytes,
                  let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)),
                  plan.status == .running else {
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
            context.store.takeLease(id, worker: context.workerID, leaseMs: leaseMs, deadlineMs: deadlineMs(now), into: &commit)
            write(machine.plan, events: events, into: &commit, now: now)
            if case .finished(let status) = machine.nextAction() {
                // Nothing to roll back: the takeover itself ends the plan.
                let record = try? connection.send("HGET", keys.active(customer: plan.customerID), plan.recommendationID)
                    .bytes.flatMap { try RecommendationRecord.decode($0) }
                finish(plan: machine.plan, record: record, status: status, into: &commit)
            }
            commits.append(commit)
            machines.append(machine)
        }
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
            let record = records[machineIndex].bytes.flatMap { try? RecommendationRecord.decode($0) }
            running[machine.plan.id] = RunningPlan(machine: machine, record: record)
            context.logger.warning("took over a plan whose worker was lost; rolling it back", metadata: ["plan_id": "\(machine.plan.id)"])
        }
    }
}
