import Foundation

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
