import Coordination
import Foundation
import RedisClient

/// What one executor lane knows of the plans it runs, shared by its parts (`PlanIntake`,
/// `PlanRunner`, `StepResults`, `Leases`). Touched only by that lane's thread.
final class PlanBook {
    let context: DaemonContext
    /// This lane's number among the process's `--plan-workers`.
    let lane: Int
    /// Who holds the leases of this lane's plans: the worker id, and for lanes past the first
    /// the worker id and the lane (`<worker>/2`), so that no two lanes of one process ever
    /// both believe a plan theirs (a lane that stalls past its leases loses them like a dead
    /// daemon would).
    let owner: String
    /// The most plans this lane runs at once: its share of `--max-concurrent-plans`.
    let capacity: Int
    /// Where plans taken from `coord:plans:ready` wait until their start is committed.
    let readyInflight: String
    /// Where step results taken from `coord:steps:results` wait until they are applied.
    let resultsInflight: String
    /// Where a step result over `--max-message-bytes` waits, unread, until it is refused.
    var resultsOversized: String { context.keys.oversized(inflight: resultsInflight) }
    let clock = ExecutorClock()

    var running: [String: RunningPlan] = [:]
    /// Ready entries whose examination found stale reads; looked at again next tick.
    var reexamine: [[UInt8]] = []
    /// Plans whose last commit failed: their memory may be behind Redis (or ahead of it, had
    /// it been changed first), so they are read again before they advance.
    var needsReload: Set<String> = []
    /// Plans whose start, with their first step in the same commit, Redis refused: they start
    /// alone next time (see `PlanIntake`).
    var startAlone: Set<String> = []

    init(context: DaemonContext, lane: Int = 0, lanes: Int = 1) {
        self.context = context
        self.lane = lane
        owner = lane == 0 ? context.workerID : "\(context.workerID)/\(lane + 1)"
        let total = context.configuration.maxConcurrentPlans
        capacity = max(1, total / lanes + (lane < total % lanes ? 1 : 0))
        readyInflight = context.keys.inflight(worker: context.workerID, queue: "plans:ready:\(lane)")
        resultsInflight = context.keys.inflight(worker: context.workerID, queue: "steps:results:\(lane)")
    }

    /// The lease holder's name as stored.
    var ownerBytes: [UInt8] { Array(owner.utf8) }

    var keys: Keys { context.keys }
    var inflightIndex: String { keys.inflightLists(worker: context.workerID) }
    /// Now, by Redis's clock.
    var now: Date { clock.now }

    var leaseMs: Int { Int(context.configuration.planLease * 1000) }

    /// When a lease taken or renewed at `now` lapses, in ms of Redis's clock.
    func deadlineMs(_ now: Date) -> Int { Int(now.timeIntervalSince1970 * 1000) + leaseMs }

    /// A commit that only removes a held result from where it waits.
    func ack(_ held: (message: [UInt8], list: String)) -> Commit {
        var commit = Commit()
        context.store.release(held.message, from: held.list, into: &commit)
        return commit
    }

    /// For a plan this lane lets go (no longer its to run): the step result it holds from this
    /// lane's in-flight list, moved to the plan's mailbox, where the new owner looks; nil when
    /// it holds none there.
    func handOver(_ plan: RunningPlan, id: String) -> Commit? {
        guard let ack = plan.arrived?.ack, ack.list == resultsInflight else { return nil }
        var commit = self.ack(ack)
        context.store.mail(ack.message, toPlan: id, into: &commit)
        return commit
    }

    func write(_ plan: ExecutionPlan, events: [DomainEvent], into commit: inout Commit, now: Date) {
        context.store.storePlan(plan, into: &commit)
        context.events.emit(events, at: now, into: &commit)
    }

    /// A plan's final transition was applied: counted, and logged.
    func finished(_ plan: ExecutionPlan) {
        context.counters.add(plansFinished: 1)
        context.metrics.planFinished(plan.status.rawValue)
        context.logger.info("plan finished", metadata: ["plan_id": "\(plan.id)", "status": "\(plan.status.rawValue)"])
    }

    /// The plan ended: release it and retire its recommendation, waking its dependents.
    func finish(plan: ExecutionPlan, record: RecommendationRecord?, status: ExecutionStatus, into commit: inout Commit) {
        context.store.finishPlan(plan, record: record, status: status, into: &commit)
    }
}

/// One plan this daemon runs.
final class RunningPlan {
    var machine: PlanMachine
    var record: RecommendationRecord?
    var wait: PlanWait?
    /// A result that arrived for the step being waited on, and the attempt it answers.
    /// `ack` is nil for a result over `--max-message-bytes`: it was refused (and acknowledged)
    /// unread, and only its failure remains to apply.
    var arrived: (outcome: StepOutcome, ack: (message: [UInt8], list: String)?, attempt: String)?
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

/// The step a plan waits on.
struct PlanWait {
    var index: Int
    var rollback: Bool
    var stepID: String
    var due: Date
    /// Known in advance (simulated); nil when an agent answers.
    var outcome: StepOutcome?
    /// The dispatch an agent must answer (agents executor).
    var attempt: StepAttempt?
}

/// Redis's clock minus this machine's, read once a second: leases, step deadlines and takeover
/// compare Redis time (one clock for every daemon), without a TIME per tick.
final class ExecutorClock {
    private var offset: TimeInterval = 0
    private var lastRead = Date.distantPast

    /// Now, by Redis's clock.
    var now: Date { Date().addingTimeInterval(offset) }

    /// Reads Redis's clock again when the last reading is a second old.
    func refresh(_ connection: RedisConnection) throws(RedisError) {
        guard Date().timeIntervalSince(lastRead) >= 1 else { return }
        offset = try RedisClock.now(connection).timeIntervalSince(Date())
        lastRead = Date()
    }
}
