import Foundation

// The seed design's types (../seed, "FILE 1"), with its JSON names. Decoding is lenient where
// the protocol gives defaults and strict where it names a rule (PROTOCOL.md section 2.2).

public enum RecommendationType: String, Codable, Sendable, CaseIterable {
    case cost, performance, resource, application
}

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

    public static func < (a: RiskLevel, b: RiskLevel) -> Bool { a.score < b.score }
}

public enum ApprovalStatus: String, Codable, Sendable, CaseIterable {
    case pending, approved, rejected, expired
}

/// Plan and step states. `cancelled` is an addition: a plan whose dependency failed.
public enum ExecutionStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, completed, failed
    case rolledBack = "rolled_back"
    case cancelled

    public var isFinal: Bool {
        switch self {
        case .completed, .failed, .rolledBack, .cancelled: true
        case .pending, .running: false
        }
    }
}

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

public struct Recommendation: Sendable, Equatable {
    public var id: String
    public var agentID: String
    public var agentType: String
    public var customerID: String
    public var type: RecommendationType
    public var title: String
    public var description: String
    public var action: String
    public var riskLevel: RiskLevel
    public var estimatedSavings: Double
    public var estimatedImpact: String
    public var affectedResources: [String]
    public var parameters: [String: JSONValue]
    public var dependencies: [String]
    public var priority: Int
    public var confidence: Double
    public var createdAt: Date?
    public var expiresAt: Date?
    public var status: RecommendationStatus?
    public var metadata: [String: JSONValue]

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

public struct Conflict: Codable, Sendable, Equatable {
    public var id: String
    public var type: ConflictType
    public var recommendationIDs: [String]
    public var description: String
    public var severity: String
    public var conflictingField: String
    public var detectedAt: Date
    public var resolved: Bool
    public var resolution: String?
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
    public var userID: String
    public var at: Date

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case at
    }

    public init(userID: String, at: Date) {
        self.userID = userID
        self.at = at
    }
}

public struct Approval: Codable, Sendable, Equatable {
    public var id: String
    public var recommendationID: String
    public var customerID: String
    public var riskLevel: RiskLevel
    public var status: ApprovalStatus
    public var requestedBy: String
    public var requestedAt: Date
    public var approvedBy: String?
    public var approvedAt: Date?
    public var rejectedBy: String?
    public var rejectedAt: Date?
    public var rejectionReason: String?
    public var expiresAt: Date
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

public struct ExecutionStep: Codable, Sendable, Equatable {
    public var id: String
    public var action: String
    public var agentID: String
    public var parameters: [String: JSONValue]
    public var critical: Bool
    public var reversible: Bool
    public var status: ExecutionStatus
    public var result: [String: JSONValue]?
    public var error: String?
    public var startedAt: Date?
    public var completedAt: Date?
    public var durationMs: Int
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

public struct ExecutionPlan: Codable, Sendable, Equatable {
    public var id: String
    public var recommendationID: String
    public var customerID: String
    public var steps: [ExecutionStep]
    public var status: ExecutionStatus
    public var currentStep: Int
    public var createdAt: Date
    public var startedAt: Date?
    public var completedAt: Date?
    public var rolledBackAt: Date?
    public var totalDurationMs: Int
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

public struct CoordinationRequest: Sendable, Equatable {
    public var customerID: String
    public var recommendations: [Recommendation]
    /// Defaults to true (PROTOCOL.md section 8); false asks a person about everything.
    public var autoApprove: Bool
    public var executeNow: Bool

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
    public enum Reason: String, Codable, Sendable, CaseIterable {
        case conflict
        case dependencyCycle = "dependency_cycle"
        case dependencyMissing = "dependency_missing"
        case dependencyDiscarded = "dependency_discarded"
        case expired
        case conflictsWithActive = "conflicts_with_active"
    }

    public var id: String
    public var reason: Reason
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

    public init(id: String, reason: Reason, conflictID: String? = nil, activeID: String? = nil, relatedID: String? = nil) {
        self.id = id
        self.reason = reason
        self.conflictID = conflictID
        self.activeID = activeID
        self.relatedID = relatedID
    }
}

public struct CoordinationResponse: Codable, Sendable, Equatable {
    public var id: String
    public var totalRecommendations: Int
    public var conflictsDetected: Int
    public var conflictsResolved: Int
    public var recommendationsKept: Int
    public var approvalsRequired: Int
    public var autoApproved: Int
    public var conflicts: [Conflict]
    /// True when more conflicts exist than `conflicts` lists (`--max-listed-conflicts`).
    public var conflictsTruncated: Bool
    public var recommendations: [Recommendation]
    public var approvals: [Approval]
    public var executionPlans: [ExecutionPlan]
    public var discarded: [DiscardedRecommendation]
    public var executionOrder: [String]
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
            throw invalid(key, "unknown value \"\(raw)\" (one of \(known))")
        }
        return value
    }

    func invalid(_ key: Key, _ message: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: codingPath + [key], debugDescription: message))
    }
}
