import Foundation

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
