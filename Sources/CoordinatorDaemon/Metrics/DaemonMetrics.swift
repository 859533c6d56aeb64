import CoreMetrics
import Dispatch
import Prometheus
import Synchronization

/// The daemon's metrics (PROTOCOL.md section 7), one set per daemon, recorded through
/// swift-metrics into a Prometheus registry that `MetricsServer` serves.
///
/// Every labelled series exists from the start at 0, so a rate over a label that never moved
/// reads 0 rather than nothing. Label values come from fixed sets: a kind or code a client made
/// up is counted as `unknown` / `other`, so hostile input cannot grow the label space.
/// With metrics off (`--metrics-port 0`) every call returns at once.
final class DaemonMetrics: Sendable {
    /// How a message ended: done, answered with an error, or refused into the dead-letter list.
    enum Outcome: Int, CaseIterable, Sendable {
        case ok, error, dead

        var label: String {
            switch self {
            case .ok: "ok"
            case .error: "error"
            case .dead: "dead"
            }
        }

        init(_ failure: Refusal?) {
            guard let failure else { self = .ok; return }
            self = failure.isDeadLetter ? .dead : .error
        }
    }

    /// The (queue, kind) pairs messages are counted under.
    enum MessageKind: Int, CaseIterable, Sendable {
        case coordinate, executePlan, getPlan, getApproval, listApprovals, unknownRequest
        case decision
        case stepResult

        var queue: String {
            switch self {
            case .decision: "approvals"
            case .stepResult: "steps:results"
            default: "requests"
            }
        }

        var kind: String {
            switch self {
            case .coordinate: "coordinate"
            case .executePlan: "execute_plan"
            case .getPlan: "get_plan"
            case .getApproval: "get_approval"
            case .listApprovals: "list_approvals"
            case .unknownRequest: "unknown"
            case .decision: "decision"
            case .stepResult: "step_result"
            }
        }

        /// A request's kind as sent; anything else is `unknown`.
        init(request kind: String) {
            switch kind {
            case "coordinate": self = .coordinate
            case "execute_plan": self = .executePlan
            case "get_plan": self = .getPlan
            case "get_approval": self = .getApproval
            case "list_approvals": self = .listApprovals
            default: self = .unknownRequest
            }
        }
    }

    /// Every code of `ErrorCode`, and "other" for any code not among them.
    static let deadLetterCodes = [ErrorCode]([
        .invalidJSON, .invalidRequest, .tooLarge, .notFound, .conflictState, .alreadyProcessed,
        .expired, .forbidden, .internal, .poison, .replyUndeliverable,
    ]).map(\.rawValue) + ["other"]
    static let finishedStatuses = ["completed", "failed", "rolled_back", "cancelled"]
    static let risks = ["low", "medium", "high", "critical"]
    /// Lists whose length is sampled, by their name under the prefix.
    static let sampledQueues = ["requests", "approvals", "steps:results", "plans:ready", "dead"]
    /// Queues whose in-flight lists are sampled.
    static let inflightQueues = ["requests", "approvals", "steps:results", "plans:ready"]

    static let help: [String: String] = [
        "coordinatord_messages_total": "Messages finished by this daemon, by queue, kind and outcome (ok, error reply, dead-lettered).",
        "coordinatord_request_duration_seconds": "Seconds from taking a message off its queue to the commit of its effects.",
        "coordinatord_queue_depth": "Length of a list under the prefix, read from Redis at most once a second.",
        "coordinatord_inflight": "Messages in this daemon's in-flight lists, read from Redis at most once a second.",
        "coordinatord_approvals_pending": "Pending approvals by risk level (all daemons' view of Redis).",
        "coordinatord_approvals_expiring_soon": "Pending approvals that expire within the next hour.",
        "coordinatord_plans": "Plans held by this daemon's executor (running, or waiting for an agent's answer), and plans queued for any executor (queued, read from Redis).",
        "coordinatord_plans_finished_total": "Plans this daemon brought to a final status.",
        "coordinatord_dead_letters_total": "Dead letters this daemon wrote, by error code.",
        "coordinatord_redis_errors_total": "Redis operations of this daemon that failed (the loop retried).",
        "coordinatord_replies_dropped_total": "Older replies cut from a reply list by its cap (--reply-max): a client reading too slowly lost them.",
        "coordinatord_intake_paused_seconds_total": "Seconds this daemon's request workers took no requests because more than --plan-backlog plans waited for an executor (counted when intake resumes).",
        "coordinatord_up": "1 while this daemon runs, its last read of Redis succeeded and Redis takes its writes, else 0.",
    ]

    let isOn: Bool
    let registry: PrometheusCollectorRegistry
    private let messages: [CoreMetrics.Counter]   // MessageKind × Outcome
    private let durations: [CoreMetrics.Timer]    // by MessageKind
    private let deadLetters: [String: CoreMetrics.Counter]
    private let finished: [String: CoreMetrics.Counter]
    private let redisErrors: CoreMetrics.Counter?
    private let dropped: CoreMetrics.Counter?
    private let paused: CoreMetrics.FloatingPointCounter?
    private let plansRunning: CoreMetrics.Gauge?
    private let plansWaiting: CoreMetrics.Gauge?
    private let plansQueued: CoreMetrics.Gauge?
    /// What each executor lane holds (running, waiting), summed into the two gauges; on a
    /// cluster each partition's lane is one (keyed `<partition>/<lane>`).
    private let lanes = Mutex<[String: (running: Int, waiting: Int)]>([:])
    private let queueDepth: [String: CoreMetrics.Gauge]
    private let inflight: [String: CoreMetrics.Gauge]
    private let approvalsPending: [String: CoreMetrics.Gauge]
    private let expiringSoon: CoreMetrics.Gauge?
    private let up: CoreMetrics.Gauge?

    init(enabled: Bool) {
        isOn = enabled
        registry = PrometheusCollectorRegistry()
        guard enabled else {
            messages = []; durations = []; deadLetters = [:]; finished = [:]
            redisErrors = nil; dropped = nil; paused = nil; plansRunning = nil; plansWaiting = nil; plansQueued = nil
            queueDepth = [:]; inflight = [:]; approvalsPending = [:]; expiringSoon = nil; up = nil
            return
        }
        // Pop to commit is usually a millisecond or two; the tail shows Redis or lock trouble.
        let seconds: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                   .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                   .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
                                   .seconds(5), .seconds(10)]
        let factory = RegistryMetricsFactory(registry: registry, help: Self.help,
                                             buckets: ["coordinatord_request_duration_seconds": seconds])
        func counter(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
        }
        func gauge(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        }
        func keyed(_ values: [String], _ make: (String) -> CoreMetrics.Counter) -> [String: CoreMetrics.Counter] {
            Dictionary(uniqueKeysWithValues: values.map { ($0, make($0)) })
        }
        func keyedGauges(_ values: [String], _ make: (String) -> CoreMetrics.Gauge) -> [String: CoreMetrics.Gauge] {
            Dictionary(uniqueKeysWithValues: values.map { ($0, make($0)) })
        }
        messages = MessageKind.allCases.flatMap { kind in
            Outcome.allCases.map { outcome in
                counter("coordinatord_messages_total", [("queue", kind.queue), ("kind", kind.kind), ("outcome", outcome.label)])
            }
        }
        durations = MessageKind.allCases.map {
            CoreMetrics.Timer(label: "coordinatord_request_duration_seconds", dimensions: [("kind", $0.kind)], factory: factory)
        }
        deadLetters = keyed(Self.deadLetterCodes) { counter("coordinatord_dead_letters_total", [("code", $0)]) }
        finished = keyed(Self.finishedStatuses) { counter("coordinatord_plans_finished_total", [("status", $0)]) }
        redisErrors = counter("coordinatord_redis_errors_total")
        dropped = counter("coordinatord_replies_dropped_total")
        paused = CoreMetrics.FloatingPointCounter(label: "coordinatord_intake_paused_seconds_total", dimensions: [], factory: factory)
        plansRunning = gauge("coordinatord_plans", [("status", "running")])
        plansWaiting = gauge("coordinatord_plans", [("status", "waiting")])
        plansQueued = gauge("coordinatord_plans", [("status", "queued")])
        queueDepth = keyedGauges(Self.sampledQueues) { gauge("coordinatord_queue_depth", [("queue", $0)]) }
        inflight = keyedGauges(Self.inflightQueues) { gauge("coordinatord_inflight", [("queue", $0)]) }
        approvalsPending = keyedGauges(Self.risks) { gauge("coordinatord_approvals_pending", [("risk", $0)]) }
        expiringSoon = gauge("coordinatord_approvals_expiring_soon")
        up = gauge("coordinatord_up")
        for gauge in [plansRunning, plansWaiting, plansQueued, expiringSoon, up] { gauge?.record(0) }
        for gauge in Array(queueDepth.values) + Array(inflight.values) + Array(approvalsPending.values) { gauge.record(0) }
    }

    /// A monotonic instant for `since:`, taken when a batch is popped.
    @inline(__always)
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: - Hooks on the hot path (an atomic add and, for durations, a short lock)

    /// A request finished (its commit applied): counted by kind and outcome (a dead letter
    /// also by its code), timed from `since`.
    func request(kind: String, _ failure: Refusal?, since start: UInt64) {
        guard isOn else { return }
        // A message that is not JSON has no kind to read (its reply says "coordinate", the default).
        finish(failure?.code == .invalidJSON ? .unknownRequest : MessageKind(request: kind), failure, since: start)
    }

    /// An approval decision finished (its commit applied).
    func decision(_ failure: Refusal?, since start: UInt64) {
        guard isOn else { return }
        finish(.decision, failure, since: start)
    }

    /// A step result was taken off `steps:results`: nil when it was read, else why it was refused.
    func stepResult(_ failure: Refusal?) {
        guard isOn else { return }
        count(.stepResult, failure)
    }

    private func finish(_ kind: MessageKind, _ failure: Refusal?, since start: UInt64) {
        count(kind, failure)
        let now = Self.now()
        durations[kind.rawValue].recordNanoseconds(Int64(now > start ? now - start : 0))
    }

    private func count(_ kind: MessageKind, _ failure: Refusal?) {
        let outcome = Outcome(failure)
        messages[kind.rawValue * Outcome.allCases.count + outcome.rawValue].increment()
        if outcome == .dead, let failure { deadLettered(code: failure.code.rawValue) }
    }

    /// A dead letter was committed with this code (those of requests, decisions and step
    /// results are counted by their hooks above; this is for the others: poison, undeliverable replies).
    func deadLettered(code: String, count: Int = 1) {
        guard isOn, count > 0 else { return }
        (deadLetters[code] ?? deadLetters["other"])?.increment(by: count)
    }

    /// A plan this daemon ran reached a final status.
    func planFinished(_ status: String) {
        guard isOn else { return }
        finished[status]?.increment()
    }

    /// A commit cut this many older replies from reply lists past `--reply-max`.
    func repliesDropped(_ count: Int) {
        dropped?.increment(by: count)
    }

    /// Intake resumed after pausing this long for the executor (`PlanBacklog`).
    func intakePaused(seconds: Double) {
        paused?.increment(by: seconds)
    }

    /// A Redis operation failed and its loop will retry.
    func redisError() {
        redisErrors?.increment()
    }

    /// What an executor lane holds now; the gauges show the sum over the lanes. The arguments
    /// are only evaluated with metrics on.
    func plans(lane: String, running: @autoclosure () -> Int, waiting: @autoclosure () -> Int) {
        guard isOn else { return }
        let held = (running: running(), waiting: waiting())
        let total = lanes.withLock { lanes in
            lanes[lane] = held
            return lanes.values.reduce((running: 0, waiting: 0)) { ($0.running + $1.running, $0.waiting + $1.waiting) }
        }
        plansWaiting?.record(total.waiting)
        plansRunning?.record(max(0, total.running - total.waiting))
    }

    // MARK: - Sampled from Redis

    /// What `MetricsSampler` read from Redis (nil when Redis could not be read).
    struct Sample: Sendable {
        var queueDepth: [String: Int] = [:]
        var inflight: [String: Int] = [:]
        var approvalsByRisk: [String: Int] = [:]
        var expiringSoon = 0
    }

    func record(_ sample: Sample?, writesRefused: Bool = false) {
        guard isOn else { return }
        guard let sample else {
            up?.record(0)
            return
        }
        for (queue, gauge) in queueDepth { gauge.record(sample.queueDepth[queue] ?? 0) }
        for (queue, gauge) in inflight { gauge.record(sample.inflight[queue] ?? 0) }
        for (risk, gauge) in approvalsPending { gauge.record(sample.approvalsByRisk[risk] ?? 0) }
        expiringSoon?.record(sample.expiringSoon)
        // Queued plans are those on the ready list: started or execute_now, no executor yet.
        plansQueued?.record(sample.queueDepth["plans:ready"] ?? 0)
        up?.record(writesRefused ? 0 : 1)
    }

    /// The metrics in Prometheus text exposition format.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
