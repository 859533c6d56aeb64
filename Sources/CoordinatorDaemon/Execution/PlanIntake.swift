import Coordination
import Foundation
import RedisClient

/// Takes plans from `coord:plans:ready` and decides, from their dependencies, whether each
/// starts, waits or is cancelled; adopts plans `execute_plan` already marked running.
struct PlanIntake {
    let book: PlanBook
    /// Takes a started plan's first step in the commit that starts it.
    let runner: PlanRunner

    private var context: DaemonContext { book.context }
    private var keys: Keys { book.keys }

    /// A ready entry whose plan is pending (or, for `adopt`, running but not here).
    private struct Candidate {
        var entry: [UInt8]
        var stored: [UInt8]
        var plan: ExecutionPlan
    }

    private enum Decision {
        case start
        /// The dependencies waited on, each with its active record's bytes as read.
        case wait([(id: String, active: [UInt8])])
        case cancel(String)
    }

    /// What was read for a candidate: its recommendation and, per dependency, its active record
    /// (with its bytes) and its final record.
    private struct Reading {
        var record: RecommendationRecord
        var dependencies: [(id: String, active: (record: RecommendationRecord, bytes: [UInt8])?, done: RecommendationRecord?)]
    }

    /// Takes up to the free room in ready plans (blocking briefly when the executor is idle)
    /// and examines them. Returns whether any was looked at.
    func takeReady(_ connection: RedisConnection) throws(RedisError) -> Bool {
        let free = book.capacity - book.running.count
        var ids = book.reexamine
        book.reexamine.removeAll()
        if free > ids.count {
            let reply = try connection.run(Scripts.takeBatch, keys: [keys.readyPlans, book.readyInflight, book.inflightIndex],
                                           args: [min(free - ids.count, 128), 0])
            ids += (reply.array ?? []).compactMap(\.bytes)
        }
        if ids.isEmpty && book.running.isEmpty {
            // Idle: block briefly on the ready list so a new plan starts at once.
            if let id = try connection.blockingMove(from: keys.readyPlans, to: book.readyInflight, timeout: 0.5) {
                // Named in the index, as takeBatch does (a blocking move cannot).
                _ = try connection.send("HSETNX", book.inflightIndex, book.readyInflight, keys.readyPlans)
                ids = [id]
            }
        }
        guard !ids.isEmpty else { return false }
        try examine(ids, connection)
        return true
    }

    /// Looks at plans handed to the executors: starts those whose dependencies completed,
    /// parks those that must wait, cancels those whose dependencies failed.
    private func examine(_ ids: [[UInt8]], _ connection: RedisConnection) throws(RedisError) {
        let now = book.now
        let planIDs = ids.map { String(decoding: $0, as: UTF8.self) }
        let stored = try connection.pipeline(planIDs.map { RedisCommand("GET", keys.plan($0)) })
        var candidates: [Candidate] = []
        var acks: [Commit] = []
        var adoptions: [Candidate] = []
        for (index, reply) in stored.enumerated() {
            guard let (bytes, plan) = reply.stored(ExecutionPlan.self) else {
                context.logger.error("ready plan is missing or unreadable; dropped", metadata: ["plan_id": "\(planIDs[index])"])
                acks.append(Commit(acknowledging: ids[index], in: book.readyInflight))
                continue
            }
            let candidate = Candidate(entry: ids[index], stored: bytes, plan: plan)
            if plan.status == .running, book.running[plan.id] == nil {
                adoptions.append(candidate)
            } else if plan.status != .pending || book.running[plan.id] != nil {
                acks.append(Commit(acknowledging: ids[index], in: book.readyInflight))
                book.startAlone.remove(plan.id)
            } else {
                candidates.append(candidate)
            }
        }
        if !adoptions.isEmpty { try adopt(adoptions, connection, now: now) }
        let readings = try read(candidates, connection)
        let decisions = decide(candidates, readings)
        try commit(candidates, decisions, readings, acks: acks, connection, now: now)
    }

    /// The plan's own recommendation and, for each dependency, its active or final record.
    private func read(_ candidates: [Candidate], _ connection: RedisConnection) throws(RedisError) -> [Int: Reading] {
        let reads = candidates.map { RedisCommand("HGET", keys.active(customer: $0.plan.customerID), $0.plan.recommendationID) }
        let records = reads.isEmpty ? [] : try connection.pipeline(reads)
        var dependencyReads: [RedisCommand] = []
        var recordOf: [Int: (RecommendationRecord, start: Int)] = [:]
        for (index, candidate) in candidates.enumerated() {
            guard let record = records[index].record else { continue }
            recordOf[index] = (record, dependencyReads.count)
            for dependency in record.recommendation.dependencies {
                dependencyReads.append(RedisCommand("HGET", keys.active(customer: candidate.plan.customerID), dependency))
                dependencyReads.append(RedisCommand("GET", keys.recommendation(customer: candidate.plan.customerID, id: dependency)))
            }
        }
        let replies = dependencyReads.isEmpty ? [] : try connection.pipeline(dependencyReads)
        return recordOf.mapValues { record, start in
            let dependencies = record.recommendation.dependencies.enumerated().map { offset, dependency in
                let active = replies[start + offset * 2]
                return (dependency, active.record.flatMap { record in active.bytes.map { (record, $0) } },
                        replies[start + offset * 2 + 1].record)
            }
            return Reading(record: record, dependencies: dependencies)
        }
    }

    /// Each candidate's decision. Waiting is guarded by each dependency's active record as read
    /// here, in the same round trip that found it active: a dependency that ends (it leaves the
    /// active hash in the commit that wakes its waiters) before the commit makes it stale, so a
    /// plan never waits on a dependency that already ended. (A guard read in a later round trip
    /// could see the dependency's final state and let the plan wait for ever.)
    private func decide(_ candidates: [Candidate], _ readings: [Int: Reading]) -> [(Int, Decision)] {
        candidates.indices.map { index in
            guard let reading = readings[index] else { return (index, .cancel("its recommendation is no longer active")) }
            var waits: [(id: String, active: [UInt8])] = []
            for (dependency, active, done) in reading.dependencies {
                if let active {
                    waits.append((dependency, active.bytes))
                } else if let done {
                    let status = done.recommendation.status?.rawValue ?? "unknown"
                    if status != "completed" { return (index, .cancel("dependency \(dependency) ended \(status)")) }
                } else {
                    return (index, .cancel("dependency \(dependency) is unknown"))
                }
            }
            return (index, waits.isEmpty ? .start : .wait(waits))
        }
    }

    /// Writes every decision (after the bare acknowledgements) and runs the plans started.
    private func commit(_ candidates: [Candidate], _ decisions: [(Int, Decision)], _ readings: [Int: Reading],
                        acks: [Commit], _ connection: RedisConnection, now: Date) throws(RedisError) {
        var commits = acks
        var started: [Int: RunningPlan] = [:]
        for (index, decision) in decisions {
            let candidate = candidates[index]
            let plan = candidate.plan
            var commit = Commit(acknowledging: candidate.entry, in: book.readyInflight)
            commit.require(keys.plan(plan.id), .equals(candidate.stored))
            var machine = PlanMachine(plan: plan)
            switch decision {
            case .start:
                commit.require(keys.planLease(plan.id), .absent)
                // The start and the first step's transition in one commit: the plan is written
                // once, and its first step goes out (or, simulated, runs) only if it started.
                let record = readings[index]?.record
                var events = machine.start(now: now)
                let running = RunningPlan(machine: machine, record: record)
                var wait: PlanWait?
                if !book.startAlone.contains(plan.id) {
                    events += runner.nextStep(running, &machine, &wait, now: now, into: &commit) ?? []
                }
                running.machine = machine
                running.wait = wait
                book.write(machine.plan, events: events, into: &commit, now: now)
                context.store.takeLease(plan.id, worker: book.owner, leaseMs: book.leaseMs, deadlineMs: book.deadlineMs(now),
                                        into: &commit)
                if case .finished(let status) = machine.nextAction() {
                    // Its only step ran at once: it ends in the commit that starts it.
                    book.finish(plan: machine.plan, record: record, status: status, into: &commit)
                } else if var record {
                    record.recommendation.status = .executing
                    context.store.updateActive(record, customer: plan.customerID, into: &commit)
                }
                started[index] = running
            case .wait(let dependencies):
                for (dependency, active) in dependencies {
                    commit.require(keys.active(customer: plan.customerID), .hashFieldValue(dependency, active))
                    context.store.waitForDependency(plan.id, customer: plan.customerID, dependency: dependency, into: &commit)
                }
                context.logger.info("plan waits for its dependencies",
                                    metadata: ["plan_id": "\(plan.id)", "dependencies": "\(dependencies.map(\.id))"])
            case .cancel(let reason):
                let events = machine.cancel(reason: reason, now: now)
                book.write(machine.plan, events: events, into: &commit, now: now)
                context.store.retire(customer: plan.customerID, recommendationID: plan.recommendationID,
                                     record: readings[index]?.record, status: .cancelled, planID: plan.id, planStored: true,
                                     into: &commit)
                context.logger.info("plan cancelled", metadata: ["plan_id": "\(plan.id)", "reason": "\(reason)"])
            }
            commits.append(commit)
        }
        let results = try Commit.apply(commits, on: connection)
        // The first `acks.count` commits only acknowledged; the rest follow `decisions`' order.
        for ((index, _), result) in zip(decisions, results.dropFirst(acks.count)) {
            switch result {
            case .applied, .appliedReplyUndeliverable:  // (no reply in an executor's commit)
                if let running = started[index] {
                    book.startAlone.remove(running.machine.plan.id)
                    if case .finished = running.machine.nextAction() {
                        book.finished(running.machine.plan)
                    } else {
                        book.running[running.machine.plan.id] = running
                    }
                }
            case .stale, .journaled:  // (only a coordinate meets a journal)
                book.reexamine.append(candidates[index].entry)
            case .messageGone:
                break
            case .failed(let message):
                // Back in flight: looked at again next tick, like a stale read.
                context.logger.error("plan commit failed in Redis", metadata: ["plan_id": "\(candidates[index].plan.id)", "error": "\(message)"])
                book.reexamine.append(candidates[index].entry)
                // Its first step may be what Redis refused (an agent's list of another type):
                // the plan then starts alone, and the runner retries the step, failing it after
                // --step-timeout, instead of the plan never starting.
                if started[index] != nil { book.startAlone.insert(candidates[index].plan.id) }
            }
        }
    }

    /// Plans `execute_plan` marked running in its own commit (so its reply could say so):
    /// run them from where they are, without starting them again. One that has a lease or a
    /// running-index entry is someone else's (or a lapsed one, for takeover): only acknowledged.
    private func adopt(_ adoptions: [Candidate], _ connection: RedisConnection, now: Date) throws(RedisError) {
        var reads: [RedisCommand] = []
        for adoption in adoptions {
            let plan = adoption.plan
            reads.append(RedisCommand("EXISTS", keys.planLease(plan.id)))
            reads.append(RedisCommand("ZSCORE", keys.runningPlans, plan.id))
            reads.append(RedisCommand("HGET", keys.active(customer: plan.customerID), plan.recommendationID))
        }
        let replies = try connection.pipeline(reads)
        var commits: [Commit] = []
        var adopted: [Int: RunningPlan] = [:]
        for (offset, adoption) in adoptions.enumerated() {
            let plan = adoption.plan
            var commit = Commit(acknowledging: adoption.entry, in: book.readyInflight)
            if replies[offset * 3].integer == 0, replies[offset * 3 + 1].isNull {
                commit.require(keys.planLease(plan.id), .absent)
                commit.require(keys.plan(plan.id), .equals(adoption.stored))
                context.store.takeLease(plan.id, worker: book.owner, leaseMs: book.leaseMs, deadlineMs: book.deadlineMs(now),
                                        into: &commit)
                adopted[commits.count] = RunningPlan(machine: PlanMachine(plan: plan), record: replies[offset * 3 + 2].record)
            }
            commits.append(commit)
        }
        for (index, result) in try Commit.apply(commits, on: connection).enumerated() {
            if result == .applied, let plan = adopted[index] { book.running[plan.machine.plan.id] = plan }
        }
    }
}
