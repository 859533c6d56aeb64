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
    /// Redis's clock minus this machine's, read once a second: leases, step deadlines and
    /// takeover compare Redis time (one clock for every daemon), without a TIME per tick.
    private var clockOffset: TimeInterval = 0
    private var lastClockRead = Date.distantPast
    /// Now, by Redis's clock.
    private var now: Date { Date().addingTimeInterval(clockOffset) }
    private var lastTakeoverScan = Date.distantPast
    /// Plans whose last commit failed: their memory may be behind Redis (or ahead of it, had
    /// it been changed first), so they are read again before they advance.
    private var needsReload: Set<String> = []

    private final class RunningPlan {
        var machine: PlanMachine
        var record: RecommendationRecord?
        var wait: Wait?
        /// A result that arrived for the step being waited on, and the attempt it answers.
        var arrived: (outcome: StepOutcome, ack: (message: [UInt8], list: String), attempt: String)?
        /// Redis refused this plan's commits (a key of the wrong type, such as an agent's step
        /// list): since when, how many times in a row, and its last answer. The plan is tried
        /// again with a growing pause, and a step that cannot be sent within --step-timeout
        /// fails, as an unanswered one does.
        var refused: (since: Date, count: Int, error: String)?
        var retryAt: Date?

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
        /// The dispatch an agent must answer (agents executor).
        var attempt: StepAttempt?
    }

    /// What a plan becomes when its commit is applied; adopted only then, so that the memory of
    /// a plan is never ahead of Redis.
    private struct Transition {
        var machine: PlanMachine
        var wait: Wait?
        var consumedArrival: Bool
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
    private var inflightIndex: String { keys.inflightLists(worker: context.workerID) }

    private func run() {
        var handBack = true
        var graceEnds: Date?
        while true {
            if loop.isStopping {
                if graceEnds == nil { graceEnds = Date().addingTimeInterval(min(10, context.configuration.planLease)) }
                if running.isEmpty || Date() > graceEnds! { break }
            }
            // No plan is taken before the first heartbeat (see `DaemonContext.announced`).
            guard context.announced.isSet else {
                Thread.sleep(forTimeInterval: 0.01)
                continue
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

    /// Names the executor's in-flight lists (and their queues) in the daemon's index.
    private func register(_ connection: RedisConnection) throws(RedisError) {
        _ = try connection.send("HSET", keys.inflightLists(worker: context.workerID),
                                readyInflight, keys.readyPlans, resultsInflight, keys.stepResults)
    }

    private func handBackInflight(_ connection: RedisConnection) throws(RedisError) {
        try register(connection)
        try HandBack.run(inflight: readyInflight, queue: keys.readyPlans, context: context, connection: connection)
        try HandBack.run(inflight: resultsInflight, queue: keys.stepResults, context: context, connection: connection)
        reexamine.removeAll()
        // Results held for plans went back to the queue with the rest: forget them, and read
        // every plan again (a commit may or may not have been applied when Redis went away).
        for plan in running.values { plan.arrived = nil }
        needsReload.formUnion(running.keys)
    }

    // MARK: - The tick

    private func tick(_ connection: RedisConnection, accepting: Bool) throws(RedisError) {
        let config = context.configuration
        if Date().timeIntervalSince(lastClockRead) >= 1 {
            clockOffset = try RedisClock.now(connection).timeIntervalSince(Date())
            lastClockRead = Date()
        }
        var now = self.now
        var progressed = false
        if !needsReload.isEmpty { try reload(connection) }

        if accepting {
            let free = config.maxConcurrentPlans - running.count
            var ids = reexamine
            reexamine.removeAll()
            if free > ids.count {
                let reply = try connection.run(Scripts.takeBatch, keys: [keys.readyPlans, readyInflight, inflightIndex],
                                               args: [min(free - ids.count, 128), 0])
                ids += (reply.array ?? []).compactMap(\.bytes)
            }
            if ids.isEmpty && running.isEmpty {
                // Idle: block briefly on the ready list so a new plan starts at once.
                if let id = try connection.blockingMove(from: keys.readyPlans, to: readyInflight, timeout: 0.5) {
                    // Named in the index, as takeBatch does (a blocking move cannot).
                    _ = try connection.send("HSETNX", inflightIndex, readyInflight, keys.readyPlans)
                    ids = [id]
                }
            }
            if !ids.isEmpty {
                try examine(ids, connection)
                progressed = true
                now = self.now
            }
        }

        // Always, even with no plan here: a result for nothing (late, duplicated, forged) is
        // refused at once instead of waiting in the queue for a plan to start.
        if config.executor == .agents {
            try collectResults(connection, now: now)
        }

        // Advance every plan by one transition; write them all in one pipeline. Each plan adopts
        // its transition only once its commit is applied.
        var commits: [(String, Commit, Transition)] = []
        for (id, plan) in running where plan.retryAt.map({ now >= $0 }) ?? true {
            if let (commit, transition) = advance(plan, now: now) {
                commits.append((id, commit, transition))
            }
        }
        if !commits.isEmpty {
            progressed = true
            let results = try applyIsolated(commits.map(\.1), on: connection, plans: commits.map(\.0))
            for ((id, _, transition), outcome) in zip(commits, results) {
                guard let plan = running[id] else { continue }
                guard outcome == .applied else {
                    // The lease is gone or the commit failed: what Redis holds decides.
                    if case .failed(let message) = outcome {
                        let count = (plan.refused?.count ?? 0) + 1
                        plan.refused = (plan.refused?.since ?? now, count, message)
                        plan.retryAt = now.addingTimeInterval(Self.retryPause(after: count))
                        context.logger.error("Redis refused a plan's commit; reading it again", metadata: [
                            "plan_id": "\(id)", "error": "\(message)", "attempts": "\(count)"])
                    } else {
                        context.logger.warning("a plan's commit was not applied; reading it again", metadata: ["plan_id": "\(id)"])
                    }
                    needsReload.insert(id)
                    continue
                }
                plan.refused = nil
                plan.retryAt = nil
                plan.machine = transition.machine
                plan.wait = transition.wait
                if transition.consumedArrival { plan.arrived = nil }
                if case .finished = plan.machine.nextAction() {
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
            Thread.sleep(forTimeInterval: max(0.001, min(0.02, nextDue.timeIntervalSince(self.now))))
        }
    }

    // MARK: - Starting plans

    /// Looks at plans handed to the executors: starts those whose dependencies completed,
    /// parks those that must wait, cancels those whose dependencies failed.
    private func examine(_ ids: [[UInt8]], _ connection: RedisConnection) throws(RedisError) {
        let now = self.now
        let planIDs = ids.map { String(decoding: $0, as: UTF8.self) }
        let stored = try connection.pipeline(planIDs.map { RedisCommand("GET", keys.plan($0)) })

        struct Candidate {
            var entry: [UInt8]
            var stored: [UInt8]
            var plan: ExecutionPlan
        }
        var candidates: [Candidate] = []
        var acks: [Commit] = []
        var adoptions: [(entry: [UInt8], stored: [UInt8], plan: ExecutionPlan)] = []
        for (index, reply) in stored.enumerated() {
            guard let bytes = reply.bytes, let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)) else {
                context.logger.error("ready plan is missing or unreadable; dropped", metadata: ["plan_id": "\(planIDs[index])"])
                acks.append(Commit(acknowledging: ids[index], in: readyInflight))
                continue
            }
            if plan.status == .running, running[plan.id] == nil {
                adoptions.append((ids[index], bytes, plan))
                continue
            }
            if plan.status != .pending || running[plan.id] != nil {
                acks.append(Commit(acknowledging: ids[index], in: readyInflight))
                continue
            }
            candidates.append(Candidate(entry: ids[index], stored: bytes, plan: plan))
        }
        if !adoptions.isEmpty { try adopt(adoptions, connection, now: now) }

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
            case .applied, .appliedReplyUndeliverable:  // (no reply in an executor's commit)
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

    /// Plans `execute_plan` marked running in its own commit (so its reply could say so):
    /// run them from where they are, without starting them again. One that has a lease or a
    /// running-index entry is someone else's (or a lapsed one, for takeover): only acknowledged.
    private func adopt(_ adoptions: [(entry: [UInt8], stored: [UInt8], plan: ExecutionPlan)], _ connection: RedisConnection,
                       now: Date) throws(RedisError) {
        var reads: [RedisCommand] = []
        for (_, _, plan) in adoptions {
            reads.append(RedisCommand("EXISTS", keys.planLease(plan.id)))
            reads.append(RedisCommand("ZSCORE", keys.runningPlans, plan.id))
            reads.append(RedisCommand("HGET", keys.active(customer: plan.customerID), plan.recommendationID))
        }
        let replies = try connection.pipeline(reads)
        var commits: [Commit] = []
        var adopted: [Int: RunningPlan] = [:]
        for (offset, (entry, stored, plan)) in adoptions.enumerated() {
            var commit = Commit(acknowledging: entry, in: readyInflight)
            if replies[offset * 3].integer == 0, replies[offset * 3 + 1].isNull {
                commit.require(keys.planLease(plan.id), .absent)
                commit.require(keys.plan(plan.id), .equals(stored))
                context.store.takeLease(plan.id, worker: context.workerID, leaseMs: leaseMs, deadlineMs: deadlineMs(now), into: &commit)
                let record = replies[offset * 3 + 2].bytes.flatMap { try? RecommendationRecord.decode($0) }
                adopted[commits.count] = RunningPlan(machine: PlanMachine(plan: plan), record: record)
            }
            commits.append(commit)
        }
        for (index, result) in try Commit.apply(commits, on: connection).enumerated() {
            if result == .applied, let plan = adopted[index] { running[plan.machine.plan.id] = plan }
        }
    }

    private enum Decision {
        case start
        case wait([String], [(String, Int)])
        case cancel(String)
    }

    // MARK: - Advancing plans

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
                context.store.release(arrived.ack.message, from: arrived.ack.list, into: &commit)
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
            let unsendable = running.refused.flatMap { refused in
                now.timeIntervalSince(refused.since) >= context.configuration.stepTimeout
                    ? "the step could not be sent within \(context.configuration.stepTimeout) s (--step-timeout): \(refused.error)"
                    : nil
            }
            switch machine.nextAction() {
            case .runStep(let index):
                events += machine.stepStarted(index, now: now)
                if let unsendable {
                    events += apply(.failure(unsendable), to: &machine, index: index, rollback: false, now: now)
                } else {
                    events += dispatch(&machine, &wait, index: index, rollback: false, now: now, into: &commit)
                }
            case .rollbackStep(let index):
                if let unsendable {
                    events += apply(.failure(unsendable), to: &machine, index: index, rollback: true, now: now)
                } else {
                    events += dispatch(&machine, &wait, index: index, rollback: true, now: now, into: &commit)
                }
            case .start:
                events += machine.start(now: now)
            case .finished:
                // Finished on a transition already written: nothing left to write.
                return nil
            }
        }
        commit.require(keys.planLease(planID), .equals(Array(context.workerID.utf8)))
        write(machine.plan, events: events, into: &commit, now: now)
        if case .finished(let status) = machine.nextAction() {
            finish(plan: machine.plan, record: running.record, status: status, into: &commit)
        }
        return (commit, Transition(machine: machine, wait: wait, consumedArrival: consumedArrival))
    }

    /// The pause before a plan whose commits Redis refused `count` times in a row is tried
    /// again: 0.1 s, doubling, at most 5 s (a broken key costs a few commits a second, not
    /// one per tick).
    static func retryPause(after count: Int) -> TimeInterval {
        min(5, 0.1 * pow(2, Double(min(count, 16) - 1)))
    }

    private func dispatch(_ machine: inout PlanMachine, _ wait: inout Wait?, index: Int, rollback: Bool, now: Date,
                          into commit: inout Commit) -> [DomainEvent] {
        let plan = machine.plan
        switch dispatcher.dispatch(plan, step: index, rollback: rollback, now: now) {
        case .done(let outcome):
            return apply(outcome, to: &machine, index: index, rollback: rollback, now: now)
        case .due(let due, let outcome):
            wait = Wait(index: index, rollback: rollback, stepID: plan.steps[index].id, due: due, outcome: outcome)
            return []
        case .sent(let attempt):
            // Lives past the deadline by a lease, so a takeover can still withdraw the step.
            let keepMs = max(1, attempt.deadlineMs - Int(now.timeIntervalSince1970 * 1000)) + leaseMs + 60_000
            context.store.sendStep(attempt, planID: plan.id, keepMs: keepMs, into: &commit)
            wait = Wait(index: index, rollback: rollback, stepID: attempt.stepID, due: attempt.deadline, outcome: nil, attempt: attempt)
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
                needsReload.formUnion(plans)
                throw error
            }
            var results: [Commit.Result] = []
            for (commit, plan) in zip(commits, plans) {
                do {
                    results.append(contentsOf: try Commit.apply([commit], on: connection))
                } catch {
                    guard case .server(let message) = error else {
                        needsReload.formUnion(plans)
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
    private func reload(_ connection: RedisConnection) throws(RedisError) {
        let ids = needsReload.filter { running[$0] != nil }
        needsReload.removeAll()
        guard !ids.isEmpty else { return }
        let ordered = Array(ids)
        var reads: [RedisCommand] = []
        for id in ordered {
            reads.append(RedisCommand("GET", keys.planLease(id)))
            reads.append(RedisCommand("GET", keys.plan(id)))
            reads.append(RedisCommand("GET", keys.stepAttempt(id)))
        }
        let replies = try connection.pipeline(reads)
        var acks: [Commit] = []
        for (offset, id) in ordered.enumerated() {
            guard let plan = running[id] else { continue }
            let lease = replies[offset * 3].bytes
            guard lease == Array(context.workerID.utf8),
                  let bytes = replies[offset * 3 + 1].bytes,
                  let stored = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)),
                  stored.status == .running else {
                context.logger.warning("a plan is no longer ours to run; left to Redis's state", metadata: ["plan_id": "\(id)"])
                if let arrived = plan.arrived, arrived.ack.list == resultsInflight {
                    // The result is the new owner's to take: it goes where that daemon looks.
                    var commit = ack(arrived.ack)
                    context.store.mail(arrived.ack.message, toPlan: id, into: &commit)
                    acks.append(commit)
                }
                running[id] = nil
                continue
            }
            let machine = PlanMachine(plan: stored)
            var wait: Wait?
            if let record = replies[offset * 3 + 2].bytes.flatMap(StepAttempt.decode) {
                let outstanding: Bool = switch machine.nextAction() {
                case .runStep(let index): index == record.index && !record.rollback && stored.steps[index].status == .running
                case .rollbackStep(let index): index == record.index && record.rollback
                default: false
                }
                if outstanding {
                    wait = Wait(index: record.index, rollback: record.rollback, stepID: record.stepID, due: record.deadline,
                                outcome: nil, attempt: record)
                }
            }
            if let arrived = plan.arrived, arrived.attempt != wait?.attempt?.token {
                acks.append(ack(arrived.ack))
                plan.arrived = nil
            }
            plan.machine = machine
            plan.wait = wait
            context.logger.info("plan read again from Redis", metadata: ["plan_id": "\(id)", "waiting": "\(wait != nil)"])
        }
        _ = try Commit.apply(acks, on: connection)
    }

    /// A commit that only removes a held result from where it waits.
    private func ack(_ held: (message: [UInt8], list: String)) -> Commit {
        var commit = Commit()
        context.store.release(held.message, from: held.list, into: &commit)
        return commit
    }

    private func write(_ plan: ExecutionPlan, events: [DomainEvent], into commit: inout Commit, now: Date) {
        context.store.storePlan(plan, into: &commit)
        context.events.emit(events, at: now, into: &commit)
    }

    /// The plan ended: release it and retire its recommendation, waking its dependents.
    private func finish(plan: ExecutionPlan, record: RecommendationRecord?, status: ExecutionStatus, into commit: inout Commit) {
        context.store.closeStep(planID: plan.id, into: &commit)
        context.store.finishPlan(plan, record: record, status: status, into: &commit)
    }

    // MARK: - Agents' results

    /// Takes step results off the shared queue. A result for a plan this daemon runs is
    /// applied on the next commit of that plan (which also acknowledges it); any other goes to
    /// that plan's mailbox, where the daemon running it finds it.
    private func collectResults(_ connection: RedisConnection, now: Date) throws(RedisError) {
        let reply = try connection.run(Scripts.takeBatch, keys: [keys.stepResults, resultsInflight, inflightIndex], args: [256, 0])
        var commits: [Commit] = []
        func refuse(_ raw: [UInt8], _ failure: Refusal, from list: String? = nil) {
            var commit = list == nil ? Commit(acknowledging: raw, in: resultsInflight) : Commit()
            if let list { context.store.release(raw, from: list, into: &commit) }
            context.deadLetter(raw, queue: keys.stepResults, failure: failure, now: now, in: &commit)
            commits.append(commit)
            context.metrics.stepResult(failure)
        }
        /// A result over a bound that still answers its step: dead-lettered with `too_large`
        /// (left for the step's own commit or the mailbox to acknowledge), its outcome the failure.
        func deadLetterOnly(_ raw: [UInt8], _ failure: Refusal) {
            var commit = Commit()
            context.deadLetter(raw, queue: keys.stepResults, failure: failure, now: now, in: &commit)
            commits.append(commit)
        }
        let maxBytes = context.configuration.maxMessageBytes
        // Results for plans not waiting here, checked against the attempt stored with the plan.
        var elsewhere: [(raw: [UInt8], result: StepResultMessage)] = []
        for raw in (reply.array ?? []).compactMap(\.bytes) {
            // Section 10: signed by an agent before anything is read; by the step's own agent once known.
            let admitted = context.trust.admit(raw)
            // v3: within its time window too. (A replay inside the window answers an attempt
            // that is no longer outstanding, or is the second answer to it: refused below.)
            if let refusal = admitted.refusal ?? context.trust.refusal(stepResultBy: admitted.principal)
                ?? context.trust.refusal(signedAt: admitted.issuedAt, by: admitted.principal, now: now,
                                         maxAge: context.configuration.signatureMaxAge) {
                refuse(raw, refusal)
                continue
            }
            let result: StepResultMessage
            switch StepResultMessage.parse(admitted.message, maxBytes: maxBytes) {
            case .success(let parsed): result = parsed
            case .failure(let failure):
                refuse(raw, failure)
                continue
            }
            guard let plan = running[result.planID], let wait = plan.wait, let attempt = wait.attempt,
                  wait.stepID == result.stepID else {
                elsewhere.append((raw, result))
                continue
            }
            if let problem = Self.mismatch(result, attempt) {
                refuse(raw, result.refusal ?? Refusal(.forbidden, problem))
                continue
            }
            if plan.arrived != nil {
                refuse(raw, result.refusal ?? Refusal(.forbidden, "attempt \(attempt.token) of step \(attempt.stepID) was already answered"))
                continue
            }
            if let refusal = context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) {
                refuse(raw, refusal)
                continue
            }
            plan.arrived = (result.outcome, (raw, resultsInflight), result.attempt)
            if let refusal = result.refusal { deadLetterOnly(raw, refusal) }
            context.metrics.stepResult(result.refusal)
        }
        if !elsewhere.isEmpty {
            let stored = try connection.pipeline(elsewhere.map { RedisCommand("GET", keys.stepAttempt($0.result.planID)) })
            for ((raw, result), record) in zip(elsewhere, stored) {
                guard let attempt = record.bytes.flatMap(StepAttempt.decode) else {
                    refuse(raw, result.refusal ?? Refusal(.forbidden, "plan \(result.planID) has no step waiting for a result"))
                    continue
                }
                if let problem = Self.mismatch(result, attempt) {
                    refuse(raw, result.refusal ?? Refusal(.forbidden, problem))
                    continue
                }
                // The daemon running the plan finds it in the plan's mailbox (one over a bound
                // too: it fails the step there; it is dead-lettered here, once).
                var commit = Commit(acknowledging: raw, in: resultsInflight)
                context.store.mail(raw, toPlan: result.planID, into: &commit)
                commits.append(commit)
                if let refusal = result.refusal { deadLetterOnly(raw, refusal) }
                context.metrics.stepResult(result.refusal)
            }
        }
        // Mailboxes of the plans waiting on an agent.
        let waitingIDs = running.filter { $0.value.wait?.attempt != nil && $0.value.arrived == nil }.map(\.key)
        if !waitingIDs.isEmpty {
            let mail = try connection.pipeline(waitingIDs.map { RedisCommand("LRANGE", keys.planResults($0), 0, -1) })
            for (id, messages) in zip(waitingIDs, mail) {
                guard let plan = running[id], let wait = plan.wait, let attempt = wait.attempt else { continue }
                for raw in (messages.array ?? []).compactMap(\.bytes) {
                    let admitted = context.trust.admit(raw)
                    guard admitted.refusal == nil, case .success(let result) = StepResultMessage.parse(admitted.message, maxBytes: maxBytes) else { continue }
                    guard result.stepID == wait.stepID else { continue }
                    if let problem = Self.mismatch(result, attempt) {
                        refuse(raw, Refusal(.forbidden, problem), from: keys.planResults(id))
                        continue
                    }
                    if let refusal = context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) {
                        refuse(raw, refusal, from: keys.planResults(id))
                        continue
                    }
                    if plan.arrived == nil {
                        plan.arrived = (result.outcome, (raw, keys.planResults(id)), result.attempt)
                    }
                }
            }
        }
        _ = try Commit.apply(commits, on: connection)
    }

    /// Why `result` does not answer `attempt`, or nil when it does: the same step, the same
    /// token and the same direction (a forward result never answers a rollback).
    private static func mismatch(_ result: StepResultMessage, _ attempt: StepAttempt) -> String? {
        if result.stepID != attempt.stepID || result.attempt != attempt.token {
            return "attempt: not the current attempt of step \(result.stepID) of plan \(result.planID)"
        }
        if result.rollback != attempt.rollback {
            return "rollback: \(result.rollback) answers a \(result.rollback ? "rollback" : "forward") dispatch; the current attempt is a \(attempt.rollback ? "rollback" : "forward step")"
        }
        return nil
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
            reads.append(RedisCommand("GET", keys.stepAttempt(id)))
        }
        let replies = try connection.pipeline(reads)
        var commits: [Commit] = []
        var machines: [PlanMachine] = []
        for (offset, id) in ids.enumerated() {
            guard replies[offset * 3].integer == 0 else { continue }
            guard let bytes = replies[offset * 3 + 1].bytes,
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
            // The lost worker's step is withdrawn from its agent's list, so it never runs late,
            // and no result of it is taken any more.
            context.store.closeStep(planID: id, withdrawing: replies[offset * 3 + 2].bytes.flatMap(StepAttempt.decode),
                                    into: &commit)
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
