import Foundation

// The seed design's types (../seed, "FILE 1"), with its JSON names. Decoding is lenient where
// the protocol gives defaults and strict where it names a rule (PROTOCOL.md section 2.2).

/// The kind of agent that made a recommendation (the seed's `type`).
public enum RecommendationType: String, Codable, Sendable, CaseIterable {
    case cost, performance, resource, application
}

/// How risky a recommendation is; it decides who approves it and how long the approval waits.
public enum RiskLevel: String, Codable, Sendable, CaseIterable, Comparable {
    case low, medium, high, critical

    /// The seed's risk scores: lower is safer.
    public var score: Int {
        switch self {
        case .low: 1
        case .medium: 2
        case .high: 3
        case .critical: 4
        }
    }

    /// Lower risk first: low < medium < high < critical.
    public static func < (a: RiskLevel, b: RiskLevel) -> Bool { a.score < b.score }
}

/// Where an approval stands.
public enum ApprovalStatus: String, Codable, Sendable, CaseIterable {
    case pending, approved, rejected, expired
}

/// Plan and step states. `cancelled` is an addition: a plan whose dependency failed.
public enum ExecutionStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, completed, failed
    case rolledBack = "rolled_back"
    case cancelled

    /// Whether nothing follows this status.
    public var isFinal: Bool {
        switch self {
        case .completed, .failed, .rolledBack, .cancelled: true
        case .pending, .running: false
        }
    }
}

/// The kinds of conflict (PROTOCOL.md section 2.2).
public enum ConflictType: String, Codable, Sendable, CaseIterable {
    case resource, action, dependency, timing
}

/// Where a recommendation stands. The seed used free strings ("approved",
/// "pending_approval"); these are the same strings plus the ends of its life.
public enum RecommendationStatus: String, Codable, Sendable, CaseIterable {
    case pendingApproval = "pending_approval"
    case approved, executing, completed, failed, rejected, expired, cancelled
    case rolledBack = "rolled_back"

    /// Statuses in which a recommendation takes part in later coordination.
    public var isActive: Bool {
        self == .pendingApproval || self == .approved || self == .executing
    }
}

/// An agent's proposed change (the seed's `Recommendation`, with its JSON names).
public struct Recommendation: Sendable, Equatable {
    /// Unique within the customer's request and active recommendations.
    public var id: String
    /// The agent that made it (it may not approve it).
    public var agentID: String
    /// The agent's kind, free text.
    public var agentType: String
    /// The customer; defaults to the request's.
    public var customerID: String
    /// The kind of agent that made it.
    public var type: RecommendationType
    /// A short human summary.
    public var title: String
    /// A longer human description.
    public var description: String
    /// What it does (`scale_down`, `migrate_to_spot`, ...); names the plan's steps.
    public var action: String
    /// How risky it is.
    public var riskLevel: RiskLevel
    /// Expected savings; ranks second after priority.
    public var estimatedSavings: Double
    /// Expected impact, free text.
    public var estimatedImpact: String
    /// What it touches; none means customer-wide.
    public var affectedResources: [String]
    /// Arguments for the plan's steps.
    public var parameters: [String: JSONValue]
    /// Ids of recommendations that must be decided (and executed) first.
    public var dependencies: [String]
    /// Ranks first: higher wins.
    public var priority: Int
    /// The agent's confidence, 0 to 1; ranks third.
    public var confidence: Double
    /// When the agent made it.
    public var createdAt: Date?
    /// After this it is discarded as `expired`.
    public var expiresAt: Date?
    /// Where it stands; set by the engine and the daemon.
    public var status: RecommendationStatus?
    /// Anything else the agent attaches.
    public var metadata: [String: JSONValue]

    /// A recommendation; everything but its identity and action has a default.
    public init(id: String, agentID: String, agentType: String = "", customerID: String = "",
                type: RecommendationType = .cost, title: String = "", description: String = "",
                action: String, riskLevel: RiskLevel = .low, estimatedSavings: Double = 0,
                estimatedImpact: String = "", affectedResources: [String] = [],
                parameters: [String: JSONValue] = [:], dependencies: [String] = [], priority: Int = 0,
                confidence: Double = 0, createdAt: Date? = nil, expiresAt: Date? = nil,
                status: RecommendationStatus? = nil, metadata: [String: JSONValue] = [:]) {
        self.id = id
        self.agentID = agentID
        self.agentType = agentType
        self.customerID = customerID
        self.type = type
        self.title = title
        self.description = description
        self.action = action
        self.riskLevel = riskLevel
        self.estimatedSavings = estimatedSavings
        self.estimatedImpact = estimatedImpact
        self.affectedResources = affectedResources
        self.parameters = parameters
        self.dependencies = dependencies
        self.priority = priority
        self.confidence = confidence
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.status = status
        self.metadata = metadata
    }
}

extension Recommendation: Codable {
    enum CodingKeys: String, CodingKey {
        case id
        case agentID = "agent_id"
        case agentType = "agent_type"
        case customerID = "customer_id"
        case type, title, description, action
        case riskLevel = "risk_level"
        case estimatedSavings = "estimated_savings"
        case estimatedImpact = "estimated_impact"
        case affectedResources = "affected_resources"
        case parameters, dependencies, priority, confidence
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case status, metadata
    }

    /// Decodes the seed's JSON, with the protocol's defaults and rules.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.requiredString(.id)
        agentID = try c.requiredString(.agentID)
        agentType = try c.decodeIfPresent(String.self, forKey: .agentType) ?? ""
        customerID = try c.decodeIfPresent(String.self, forKey: .customerID) ?? ""
        type = try c.requiredEnum(RecommendationType.self, .type)
        title = try c.decodeIfPresent(String.self, forKey: .title) ?? ""
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        action = try c.requiredString(.action)
        riskLevel = try c.requiredEnum(RiskLevel.self, .riskLevel)
        estimatedSavings = try c.decodeIfPresent(Double.self, forKey: .estimatedSavings) ?? 0
        estimatedImpact = try c.decodeIfPresent(String.self, forKey: .estimatedImpact) ?? ""
        affectedResources = try c.decodeIfPresent([String].self, forKey: .affectedResources) ?? []
        parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
        dependencies = try c.decodeIfPresent([String].self, forKey: .dependencies) ?? []
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        confidence = try c.decodeIfPresent(Double.self, forKey: .confidence) ?? 0
        createdAt = try c.decodeIfPresent(Date.self, forKey: .createdAt)
        expiresAt = try c.decodeIfPresent(Date.self, forKey: .expiresAt)
        // A status sent by a client means nothing to the engine; a stored one is kept.
        status = (try? c.decodeIfPresent(String.self, forKey: .status)).flatMap { $0.flatMap(RecommendationStatus.init(rawValue:)) }
        metadata = try c.decodeIfPresent([String: JSONValue].self, forKey: .metadata) ?? [:]
        guard estimatedSavings.isFinite else { throw c.invalid(.estimatedSavings, "must be a finite number") }
        guard confidence.isFinite, (0...1).contains(confidence) else { throw c.invalid(.confidence, "must be between 0 and 1") }
        if id.isEmpty { throw c.invalid(.id, "must not be empty") }
        if agentID.isEmpty { throw c.invalid(.agentID, "must not be empty") }
        if action.isEmpty { throw c.invalid(.action, "must not be empty") }
    }

    /// Encodes the seed's JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(agentID, forKey: .agentID)
        try c.encode(agentType, forKey: .agentType)
        try c.encode(customerID, forKey: .customerID)
        try c.encode(type, forKey: .type)
        try c.encode(title, forKey: .title)
        try c.encode(description, forKey: .description)
        try c.encode(action, forKey: .action)
        try c.encode(riskLevel, forKey: .riskLevel)
        try c.encode(estimatedSavings, forKey: .estimatedSavings)
        try c.encode(estimatedImpact, forKey: .estimatedImpact)
        try c.encode(affectedResources, forKey: .affectedResources)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(dependencies, forKey: .dependencies)
        try c.encode(priority, forKey: .priority)
        try c.encode(confidence, forKey: .confidence)
        try c.encodeIfPresent(createdAt, forKey: .createdAt)
        try c.encodeIfPresent(expiresAt, forKey: .expiresAt)
        try c.encode(status?.rawValue ?? "", forKey: .status)
        if !metadata.isEmpty { try c.encode(metadata, forKey: .metadata) }
    }
}

/// A conflict between recommendations and how it was resolved (the seed's `Conflict`).
public struct Conflict: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// Resource, action or dependency.
    public var type: ConflictType
    /// The two parties (a cycle's members; a missing dependency's `[id, missing_id]`).
    public var recommendationIDs: [String]
    /// What conflicts, for people.
    public var description: String
    /// `low`, `medium` or `high`, from the parties' risks.
    public var severity: String
    /// The field that conflicts (`affected_resources`, `action`, `dependencies`).
    public var conflictingField: String
    /// When it was found.
    public var detectedAt: Date
    /// Always true: the engine resolves every conflict it reports.
    public var resolved: Bool
    /// How it was resolved, for people.
    public var resolution: String?
    /// When it was resolved.
    public var resolvedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, type
        case recommendationIDs = "recommendation_ids"
        case description, severity
        case conflictingField = "conflicting_field"
        case detectedAt = "detected_at"
        case resolved, resolution
        case resolvedAt = "resolved_at"
    }

    /// A conflict.
    public init(id: String, type: ConflictType, recommendationIDs: [String], description: String, severity: String,
                conflictingField: String, detectedAt: Date, resolved: Bool = false, resolution: String? = nil,
                resolvedAt: Date? = nil) {
        self.id = id
        self.type = type
        self.recommendationIDs = recommendationIDs
        self.description = description
        self.severity = severity
        self.conflictingField = conflictingField
        self.detectedAt = detectedAt
        self.resolved = resolved
        self.resolution = resolution
        self.resolvedAt = resolvedAt
    }
}

/// One approver's vote on an approval (PROTOCOL.md section 3).
public struct ApprovalVote: Codable, Sendable, Equatable {
    /// Who voted.
    public var userID: String
    /// When.
    public var at: Date

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case at
    }

    /// A vote.
    public init(userID: String, at: Date) {
        self.userID = userID
        self.at = at
    }
}

/// A request for people to approve a kept recommendation (the seed's `Approval`).
public struct Approval: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// The recommendation awaiting approval.
    public var recommendationID: String
    /// The customer.
    public var customerID: String
    /// The recommendation's risk.
    public var riskLevel: RiskLevel
    /// Pending, approved, rejected or expired.
    public var status: ApprovalStatus
    /// The agent that made the recommendation.
    public var requestedBy: String
    /// When approval was requested.
    public var requestedAt: Date
    /// The approver whose vote made it final.
    public var approvedBy: String?
    /// When it was approved.
    public var approvedAt: Date?
    /// Who rejected it.
    public var rejectedBy: String?
    /// When it was rejected.
    public var rejectedAt: Date?
    /// Why it was rejected.
    public var rejectionReason: String?
    /// When it expires unless decided.
    public var expiresAt: Date
    /// Free text.
    public var notes: String?
    /// Votes so far, in order (an addition: critical approvals need several).
    public var approvers: [ApprovalVote]
    /// Distinct approvers needed, fixed when the approval is requested (an addition).
    public var requiredApprovals: Int

    enum CodingKeys: String, CodingKey {
        case id
        case recommendationID = "recommendation_id"
        case customerID = "customer_id"
        case riskLevel = "risk_level"
        case status
        case requestedBy = "requested_by"
        case requestedAt = "requested_at"
        case approvedBy = "approved_by"
        case approvedAt = "approved_at"
        case rejectedBy = "rejected_by"
        case rejectedAt = "rejected_at"
        case rejectionReason = "rejection_reason"
        case expiresAt = "expires_at"
        case notes, approvers
        case requiredApprovals = "required_approvals"
    }

    /// An approval.
    public init(id: String, recommendationID: String, customerID: String, riskLevel: RiskLevel,
                status: ApprovalStatus = .pending, requestedBy: String, requestedAt: Date, expiresAt: Date,
                requiredApprovals: Int = 1) {
        self.id = id
        self.recommendationID = recommendationID
        self.customerID = customerID
        self.riskLevel = riskLevel
        self.status = status
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
        self.approvers = []
        self.requiredApprovals = requiredApprovals
    }

    /// Decodes the seed's JSON (votes default to none).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        recommendationID = try c.decode(String.self, forKey: .recommendationID)
        customerID = try c.decode(String.self, forKey: .customerID)
        riskLevel = try c.decode(RiskLevel.self, forKey: .riskLevel)
        status = try c.decode(ApprovalStatus.self, forKey: .status)
        requestedBy = try c.decode(String.self, forKey: .requestedBy)
        requestedAt = try c.decode(Date.self, forKey: .requestedAt)
        approvedBy = try c.decodeIfPresent(String.self, forKey: .approvedBy)
        approvedAt = try c.decodeIfPresent(Date.self, forKey: .approvedAt)
        rejectedBy = try c.decodeIfPresent(String.self, forKey: .rejectedBy)
        rejectedAt = try c.decodeIfPresent(Date.self, forKey: .rejectedAt)
        rejectionReason = try c.decodeIfPresent(String.self, forKey: .rejectionReason)
        expiresAt = try c.decode(Date.self, forKey: .expiresAt)
        notes = try c.decodeIfPresent(String.self, forKey: .notes)
        approvers = try c.decodeIfPresent([ApprovalVote].self, forKey: .approvers) ?? []
        requiredApprovals = try c.decodeIfPresent(Int.self, forKey: .requiredApprovals) ?? 1
    }
}

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

/// A `coordinate` request (the seed's `CoordinationRequest`).
public struct CoordinationRequest: Sendable, Equatable {
    /// The customer whose recommendations these are.
    public var customerID: String
    /// The recommendations to coordinate; their order does not matter.
    public var recommendations: [Recommendation]
    /// Defaults to true (PROTOCOL.md section 8); false asks a person about everything.
    public var autoApprove: Bool
    /// Whether approved plans start at once (otherwise on `execute_plan`).
    public var executeNow: Bool

    /// A request.
    public init(customerID: String, recommendations: [Recommendation], autoApprove: Bool = true, executeNow: Bool = false) {
        self.customerID = customerID
        self.recommendations = recommendations
        self.autoApprove = autoApprove
        self.executeNow = executeNow
    }
}

extension CoordinationRequest: Codable {
    enum CodingKeys: String, CodingKey {
        case customerID = "customer_id"
        case recommendations
        case autoApprove = "auto_approve"
        case executeNow = "execute_now"
    }

    /// Decodes the seed's JSON, with the protocol's defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        customerID = try c.requiredString(.customerID)
        if customerID.isEmpty { throw c.invalid(.customerID, "must not be empty") }
        guard c.contains(.recommendations), !((try? c.decodeNil(forKey: .recommendations)) ?? false) else {
            throw c.invalid(.recommendations, "required")
        }
        recommendations = try c.decode([Recommendation].self, forKey: .recommendations)
        autoApprove = try c.decodeIfPresent(Bool.self, forKey: .autoApprove) ?? true
        executeNow = try c.decodeIfPresent(Bool.self, forKey: .executeNow) ?? false
    }
}

/// Why a recommendation was not kept (an addition to the seed's response).
public struct DiscardedRecommendation: Codable, Sendable, Equatable {
    /// Why a recommendation was discarded (PROTOCOL.md section 2.2).
    public enum Reason: String, Codable, Sendable, CaseIterable {
        case conflict
        case dependencyCycle = "dependency_cycle"
        case dependencyMissing = "dependency_missing"
        case dependencyDiscarded = "dependency_discarded"
        case expired
        case conflictsWithActive = "conflicts_with_active"
    }

    /// The discarded recommendation.
    public var id: String
    /// Why.
    public var reason: Reason
    /// The conflict that decided it, when one did.
    public var conflictID: String?
    /// The active recommendation it collided with (`conflicts_with_active`).
    public var activeID: String?
    /// The recommendation that won the conflict, or the dependency that was missing/discarded.
    public var relatedID: String?

    enum CodingKeys: String, CodingKey {
        case id, reason
        case conflictID = "conflict_id"
        case activeID = "active_id"
        case relatedID = "related_id"
    }

    /// A discard.
    public init(id: String, reason: Reason, conflictID: String? = nil, activeID: String? = nil, relatedID: String? = nil) {
        self.id = id
        self.reason = reason
        self.conflictID = conflictID
        self.activeID = activeID
        self.relatedID = relatedID
    }
}

/// A `coordinate` result (the seed's `CoordinationResponse`, plus `discarded` and `execution_order`).
public struct CoordinationResponse: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// Recommendations in the request.
    public var totalRecommendations: Int
    /// Conflicts found (listed or not).
    public var conflictsDetected: Int
    /// Conflicts resolved: all of them.
    public var conflictsResolved: Int
    /// Recommendations kept.
    public var recommendationsKept: Int
    /// Kept recommendations waiting for people.
    public var approvalsRequired: Int
    /// Kept recommendations approved at once.
    public var autoApproved: Int
    /// The conflicts listed (see `conflictsTruncated`).
    public var conflicts: [Conflict]
    /// True when more conflicts exist than `conflicts` lists (`EngineConfiguration.maxListedConflicts`, 1,000 by default).
    public var conflictsTruncated: Bool
    /// The kept recommendations with their status, in request order.
    public var recommendations: [Recommendation]
    /// The approvals requested.
    public var approvals: [Approval]
    /// The plans created for those approved at once.
    public var executionPlans: [ExecutionPlan]
    /// The recommendations not kept, and why, in request order.
    public var discarded: [DiscardedRecommendation]
    /// The kept ids in an order that respects `dependencies`.
    public var executionOrder: [String]
    /// When it was decided.
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id
        case totalRecommendations = "total_recommendations"
        case conflictsDetected = "conflicts_detected"
        case conflictsResolved = "conflicts_resolved"
        case recommendationsKept = "recommendations_kept"
        case approvalsRequired = "approvals_required"
        case autoApproved = "auto_approved"
        case conflicts
        case conflictsTruncated = "conflicts_truncated"
        case recommendations, approvals
        case executionPlans = "execution_plans"
        case discarded
        case executionOrder = "execution_order"
        case createdAt = "created_at"
    }
}

// MARK: - Decoding helpers that name the field

extension KeyedDecodingContainer {
    func requiredString(_ key: Key) throws -> String {
        guard contains(key), !((try? decodeNil(forKey: key)) ?? false) else { throw invalid(key, "required") }
        return try decode(String.self, forKey: key)
    }

    func requiredEnum<E: RawRepresentable & CaseIterable>(_ type: E.Type, _ key: Key) throws -> E where E.RawValue == String {
        let raw = try requiredString(key)
        guard let value = E(rawValue: raw) else {
            let known = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw invalid(key, "unknown value \(WireLimits.quoted(raw)) (one of \(known))")
        }
        return value
    }

    func invalid(_ key: Key, _ message: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: codingPath + [key], debugDescription: message))
    }
}
