/// The Redis key layout, all under one prefix (README "Key layout" mirrors this file).
public struct Keys: Sendable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    // Queues producers write (PROTOCOL.md section 1).
    public var requests: String { "\(prefix):requests" }
    public var approvals: String { "\(prefix):approvals" }
    public var stepResults: String { "\(prefix):steps:results" }
    /// Plans ready to be started or re-examined (their dependencies moved); executors consume it.
    public var readyPlans: String { "\(prefix):plans:ready" }

    public var dead: String { "\(prefix):dead" }
    public var events: String { "\(prefix):events" }
    public var eventStream: String { "\(prefix):events:stream" }

    /// Heartbeat hash of one worker (with TTL).
    public func worker(_ id: String) -> String { "\(prefix):workers:\(id)" }
    /// Set of worker ids that ever held in-flight lists, so lapsed ones can be recovered.
    public var workerIndex: String { "\(prefix):workers" }
    /// Messages a worker has taken from `queue` and not yet finished.
    public func inflight(worker: String, queue: String) -> String { "\(prefix):inflight:\(worker):\(queue)" }
    public func inflightPattern(worker: String) -> String { "\(prefix):inflight:\(worker):*" }

    public func dedupe(_ requestID: String) -> String { "\(prefix):dedupe:\(requestID)" }

    public func approval(_ id: String) -> String { "\(prefix):approval:\(id)" }
    public var approvalPrefix: String { "\(prefix):approval:" }
    /// Pending approvals by expiry time (ms), for the sweeper.
    public var pendingApprovals: String { "\(prefix):approvals:pending" }
    /// One customer's pending approvals by expiry time (ms), for `list_approvals`.
    public func pendingApprovals(customer: String) -> String { "\(prefix):approvals:pending:\(customer)" }

    /// A customer's active recommendations (pending approval, approved, executing): id -> record.
    public func active(customer: String) -> String { "\(prefix):active:\(customer)" }
    /// Bumped by every change of a customer's active set; commits are guarded by it.
    public func customerVersion(_ customer: String) -> String { "\(prefix):customer:\(customer):version" }
    /// A recommendation that has left the active set, kept for `--retention`.
    public func finished(customer: String, recommendation: String) -> String {
        "\(prefix):recommendation:\(customer):\(recommendation)"
    }
    /// Plans waiting for this recommendation's plan to end.
    public func waiters(customer: String, recommendation: String) -> String {
        "\(prefix):waiters:\(customer):\(recommendation)"
    }

    public func plan(_ id: String) -> String { "\(prefix):plan:\(id)" }
    /// Set once a plan was handed to the executors, so it is never started twice.
    public func planQueued(_ id: String) -> String { "\(prefix):plan:\(id):queued" }
    /// Held by the worker running the plan; lapses when it dies.
    public func planLease(_ id: String) -> String { "\(prefix):plan:\(id):lease" }
    /// Agents' results for this plan that reached a daemon not running it.
    public func planMailbox(_ id: String) -> String { "\(prefix):plan:\(id):results" }
    /// Running plans by lease deadline (ms), so a lapsed one is found without a scan.
    public var runningPlans: String { "\(prefix):plans:running" }

    public func agentSteps(_ agentID: String) -> String { "\(prefix):agent:\(agentID):steps" }
}
