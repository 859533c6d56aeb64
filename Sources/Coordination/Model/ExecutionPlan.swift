import Foundation

/// One step of a plan (the seed's `ExecutionStep`).
public struct ExecutionStep: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// What the step does (`take_snapshot`, `scale_resources`, ...).
    public var action: String
    /// The agent that runs it.
    public var agentID: String
    /// The recommendation's parameters.
    public var parameters: [String: JSONValue]
    /// Whether its failure rolls the plan back.
    public var critical: Bool
    /// Whether a rollback undoes it.
    public var reversible: Bool
    /// Where it stands.
    public var status: ExecutionStatus
    /// What it returned.
    public var result: [String: JSONValue]?
    /// Why it failed.
    public var error: String?
    /// When it started.
    public var startedAt: Date?
    /// When it ended.
    public var completedAt: Date?
    /// How long it ran, in milliseconds.
    public var durationMs: Int
    /// What undoing it needs.
    public var rollbackData: [String: JSONValue]?
    /// Why rolling this step back failed (an addition); the other rollbacks still ran.
    public var rollbackError: String?

    enum CodingKeys: String, CodingKey {
        case id, action
        case agentID = "agent_id"
        case parameters, critical, reversible, status, result, error
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case durationMs = "duration_ms"
        case rollbackData = "rollback_data"
        case rollbackError = "rollback_error"
    }

    /// A pending step.
    public init(id: String, action: String, agentID: String, parameters: [String: JSONValue] = [:],
                critical: Bool = true, reversible: Bool = false, status: ExecutionStatus = .pending) {
        self.id = id
        self.action = action
        self.agentID = agentID
        self.parameters = parameters
        self.critical = critical
        self.reversible = reversible
        self.status = status
        self.durationMs = 0
    }

    /// Decodes the seed's JSON.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        action = try c.decode(String.self, forKey: .action)
        agentID = try c.decode(String.self, forKey: .agentID)
        parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
        critical = try c.decode(Bool.self, forKey: .critical)
        reversible = try c.decode(Bool.self, forKey: .reversible)
        status = try c.decode(ExecutionStatus.self, forKey: .status)
        result = try c.decodeIfPresent([String: JSONValue].self, forKey: .result)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        startedAt = try c.decodeIfPresent(Date.self, forKey: .startedAt)
        completedAt = try c.decodeIfPresent(Date.self, forKey: .completedAt)
        durationMs = try c.decodeIfPresent(Int.self, forKey: .durationMs) ?? 0
        rollbackData = try c.decodeIfPresent([String: JSONValue].self, forKey: .rollbackData)
        rollbackError = try c.decodeIfPresent(String.self, forKey: .rollbackError)
    }
}

/// A recommendation's plan: its steps and where they stand (the seed's `ExecutionPlan`).
public struct ExecutionPlan: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// The recommendation it carries out.
    public var recommendationID: String
    /// The customer.
    public var customerID: String
    /// The steps, run in order.
    public var steps: [ExecutionStep]
    /// Where it stands.
    public var status: ExecutionStatus
    /// The index of the step running (or last run).
    public var currentStep: Int
    /// When it was created.
    public var createdAt: Date
    /// When it started.
    public var startedAt: Date?
    /// When it ended.
    public var completedAt: Date?
    /// When its rollback ended.
    public var rolledBackAt: Date?
    /// From start to end, in milliseconds.
    public var totalDurationMs: Int
    /// Free data.
    public var metadata: [String: JSONValue]?
    /// Set when the plan is being (or was) rolled back: `critical_step_failed`, `worker_lost`.
    public var rollbackReason: String?
    /// Why the plan was cancelled (a dependency that did not complete).
    public var cancelReason: String?

    enum CodingKeys: String, CodingKey {
        case id
        case recommendationID = "recommendation_id"
        case customerID = "customer_id"
        case steps, status
        case currentStep = "current_step"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case rolledBackAt = "rolled_back_at"
        case totalDurationMs = "total_duration_ms"
        case metadata
        case rollbackReason = "rollback_reason"
        case cancelReason = "cancel_reason"
    }

    /// A pending plan.
    public init(id: String, recommendationID: String, customerID: String, steps: [ExecutionStep], createdAt: Date) {
        self.id = id
        self.recommendationID = recommendationID
        self.customerID = customerID
        self.steps = steps
        self.status = .pending
        self.currentStep = 0
        self.createdAt = createdAt
        self.totalDurationMs = 0
    }

    /// Decodes the seed's JSON.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        recommendationID = try c.decode(String.self, forKey: .recommendationID)
        customerID = try c.decode(String.self, forKey: .customerID)
        steps = try c.decode([ExecutionStep].self, forKey: .steps)
        status = try c.decode(ExecutionStatus.self, forKey: .status)
        currentStep = try c.decodeIfPresent(Int.self, forKey: .currentStep) ?? 0
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        startedAt = try c.decodeIfPresent(Date.self, forKey: .startedAt)
        completedAt = try c.decodeIfPresent(Date.self, forKey: .completedAt)
        rolledBackAt = try c.decodeIfPresent(Date.self, forKey: .rolledBackAt)
        totalDurationMs = try c.decodeIfPresent(Int.self, forKey: .totalDurationMs) ?? 0
        metadata = try c.decodeIfPresent([String: JSONValue].self, forKey: .metadata)
        rollbackReason = try c.decodeIfPresent(String.self, forKey: .rollbackReason)
        cancelReason = try c.decodeIfPresent(String.self, forKey: .cancelReason)
    }
}
