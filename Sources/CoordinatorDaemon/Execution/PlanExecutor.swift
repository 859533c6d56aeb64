import Coordination
import Foundation
import Logging
import RedisClient

/// Runs execution plans (PROTOCOL.md section 5) on a thread of its own, never in the way of
/// intake. A daemon runs `--plan-workers` of these lanes, each with its own connection,
/// in-flight lists and share of `--max-concurrent-plans`, so that one lane's round trips to
/// Redis do not pace every plan. Lanes share nothing but the queues, as daemons do: each
/// takes plans from the ready list, holds their leases under its own name, and sends results
/// for another lane's plans to that plan's mailbox.
///
/// Each tick takes plans from `coord:plans:ready` (`PlanIntake`), collects agents' results
/// (`StepResults`), advances every running plan by one transition and writes all of them in
/// one pipeline of commits guarded by the plan's lease (`PlanRunner`): a transition is
/// persisted (with its events) before the next step starts, and a daemon that lost a lease
/// can no longer write the plan. Plans whose lease lapsed are taken over and rolled back
/// (`Leases`).
final class PlanExecutor: @unchecked Sendable {
    private let context: DaemonContext
    private let loop: LoopThread
    // Everything below is touched only by the executor's thread.
    private let book: PlanBook
    private let intake: PlanIntake
    private let runner: PlanRunner
    private let results: StepResults
    private let leases: Leases
    private var lastRenewal = Date.distantPast
    private var lastTakeoverScan = Date.distantPast

    init(context: DaemonContext, lane: Int = 0, lanes: Int = 1) {
        self.context = context
        let config = context.configuration
        let dispatcher: any StepDispatcher = switch config.executor {
        case .simulated: SimulatedDispatcher(speed: config.simSpeed)
        // An agent's step list is `coord:agent:<id>:steps` on a cluster too (not a partition's).
        case .agents: AgentDispatcher(keys: Keys(prefix: context.keys.root), timeout: config.stepTimeout)
        }
        book = PlanBook(context: context, lane: lane, lanes: lanes)
        runner = PlanRunner(book: book, dispatcher: dispatcher)
        intake = PlanIntake(book: book, runner: runner)
        results = StepResults(book: book)
        leases = Leases(book: book)
        loop = LoopThread(name: lane == 0 ? "executor" : "executor-\(lane + 1)", context: context)
    }

    /// Runs the executor's loop until graceful shutdown: then it takes no new plans, lets
    /// running ones finish for a grace period, and hands the rest to lease takeover.
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private var keys: Keys { context.keys }

    /// This lane's key in the plan gauges: a partition's lanes are apart from another's.
    private var metricsLane: String { "\(context.partition?.index ?? -1)/\(book.lane)" }

    private func runLoop() {
        var handBack = true
        var graceEnds: Date?
        var backoff = Backoff(first: 0.1, max: 1)
        while true {
            if loop.isStopping {
                if graceEnds == nil { graceEnds = Date().addingTimeInterval(min(10, context.configuration.planLease)) }
                if book.running.isEmpty || Date() > graceEnds! { break }
            }
            // No plan is taken before the first heartbeat.
            guard loop.announced() else { continue }
            do {
                let connection = try loop.currentConnection()
                if handBack {
                    try handBackInflight(connection)
                    handBack = false
                }
                try tick(connection, accepting: !loop.isStopping)
                backoff.reset()
            } catch {
                context.metrics.redisError()
                context.logger.error("executor: Redis unavailable, retrying", metadata: ["error": "\(error)"])
                handBack = true
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
        if let connection = loop.openConnection {
            try? handBackInflight(connection)
            if !book.running.isEmpty {
                context.logger.warning("stopping with plans still running; they are taken over when their lease lapses",
                                       metadata: ["plans": "\(book.running.keys.sorted())"])
            }
            connection.close()
        }
        // A partition's loops stop when it moves or is given up: what they held no longer counts here.
        if context.partition != nil { context.metrics.plans(lane: metricsLane, running: 0, waiting: 0) }
    }

    /// Names the executor's in-flight lists (and their queues) in the daemon's index.
    private func register(_ connection: RedisConnection) throws(RedisError) {
        _ = try connection.send("HSET", book.inflightIndex,
                                book.readyInflight, keys.readyPlans, book.resultsInflight, keys.stepResults)
    }

    private func handBackInflight(_ connection: RedisConnection) throws(RedisError) {
        try register(connection)
        try HandBack.run(inflight: book.readyInflight, queue: keys.readyPlans, context: context, connection: connection)
        try HandBack.run(inflight: book.resultsInflight, queue: keys.stepResults, context: context, connection: connection)
        try HandBack.run(inflight: book.resultsOversized, queue: keys.stepResults, context: context, connection: connection)
        book.reexamine.removeAll()
        // Results held for plans went back to the queue with the rest: forget them, and read
        // every plan again (a commit may or may not have been applied when Redis went away).
        for plan in book.running.values { plan.arrived = nil }
        book.needsReload.formUnion(book.running.keys)
        try leases.resumeOwn(connection)
    }

    private func tick(_ connection: RedisConnection, accepting: Bool) throws(RedisError) {
        let config = context.configuration
        try book.clock.refresh(connection)
        var now = book.now
        var progressed = false
        if !book.needsReload.isEmpty { try runner.reload(connection) }
        if accepting, try intake.takeReady(connection) {
            progressed = true
            now = book.now
        }
        // Always, even with no plan here: a result for nothing (late, duplicated, forged) is
        // refused at once instead of waiting in the queue for a plan to start.
        if config.executor == .agents {
            try results.collect(connection, now: now)
        }
        if try runner.advanceAll(connection, now: now) { progressed = true }

        let running = book.running
        context.metrics.plans(lane: metricsLane, running: running.count, waiting: running.values.count { $0.wait != nil && $0.wait?.outcome == nil })
        if now.timeIntervalSince(lastRenewal) >= config.planLease / 3 {
            try leases.renew(connection, now: now)
            lastRenewal = now
        }
        if accepting, now.timeIntervalSince(lastTakeoverScan) >= 1 {
            try leases.takeOverLapsed(connection, now: now)
            lastTakeoverScan = now
        }
        if !progressed && !book.running.isEmpty {
            // Waiting on timers or agents: sleep until the next is due, briefly.
            let nextDue = book.running.values.compactMap { $0.wait?.due }.min() ?? now.addingTimeInterval(0.02)
            Thread.sleep(forTimeInterval: max(0.001, min(0.02, nextDue.timeIntervalSince(book.now))))
        }
    }
}
