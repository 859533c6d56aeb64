import Foundation

/// `--medium-policy` (PROTOCOL.md section 8): `approve` (the seed's code: a person approves) or
/// `notify` (the seed's diagram: approved at once, people are told).
public enum MediumPolicy: String, Sendable, CaseIterable {
    case approve, notify
}

/// A person's decision on an approval.
public struct ApprovalDecision: Sendable, Equatable {
    /// Approve or reject.
    public enum Kind: String, Sendable { case approve, reject }
    /// Approve or reject.
    public var kind: Kind
    /// Who decided.
    public var userID: String
    /// Why (required for a rejection).
    public var reason: String

    /// A decision by `userID`.
    public init(kind: Kind, userID: String, reason: String = "") {
        self.kind = kind
        self.userID = userID
        self.reason = reason
    }
}

/// What a decision did to an approval, with the events it emits.
public struct ApprovalTransition: Sendable, Equatable {
    /// Where the approval stands after the decision.
    public enum Outcome: Sendable, Equatable { case partiallyApproved, approved, rejected, expired }
    /// The approval after the decision.
    public var approval: Approval
    /// Where the approval stands after the decision.
    public var outcome: Outcome
    /// The events the decision emits, in order.
    public var events: [DomainEvent]
}

/// Why a decision was refused (PROTOCOL.md section 3). `expired` carries the transition to
/// `expired` that the refusal causes.
public enum ApprovalRefusal: Error, Sendable, Equatable {
    case alreadyProcessed(String)
    case expired(ApprovalTransition)
    case forbidden(String)
    case invalid(String)
}

/// The seed's approval rules, completed (PROTOCOL.md sections 3 and 8), as pure functions.
public struct ApprovalPolicy: Sendable, Equatable {
    /// The seed's expiry: low 7 days, medium 48 h, high 24 h, critical 4 h.
    public static let defaultExpiry: [RiskLevel: TimeInterval] = [
        .low: 7 * 86_400, .medium: 48 * 3600, .high: 24 * 3600, .critical: 4 * 3600,
    ]

    /// How long an approval waits, by risk (`--approval-expiry`).
    public var expiry: [RiskLevel: TimeInterval] = ApprovalPolicy.defaultExpiry
    /// Whether medium risk waits for a person (`--medium-policy`).
    public var mediumPolicy: MediumPolicy = .approve
    /// Distinct approvers a critical recommendation needs.
    public var criticalApprovers = 2
    /// When set, only these users may decide.
    public var approvers: Set<String>?

    /// The seed's rules: one approver (two for critical), the default expiry, anyone may decide.
    public init() {}

    /// How a kept recommendation is approved.
    public enum Route: Sendable, Equatable {
        case approvedAtOnce
        /// Medium risk under `--medium-policy notify`: approved, and people are told.
        case approvedWithNotice
        case needsApproval(required: Int)
    }

    /// Whether a kept recommendation is approved at once or waits for people, and how many.
    public func route(_ recommendation: Recommendation, autoApprove: Bool) -> Route {
        route(risk: recommendation.riskLevel, autoApprove: autoApprove)
    }

    /// The route of a recommendation of this risk (the route depends on nothing else).
    func route(risk: RiskLevel, autoApprove: Bool) -> Route {
        if !autoApprove { return .needsApproval(required: required(for: risk)) }
        switch risk {
        case .low: return .approvedAtOnce
        case .medium where mediumPolicy == .notify: return .approvedWithNotice
        case .medium, .high, .critical: return .needsApproval(required: required(for: risk))
        }
    }

    /// Distinct approvers a recommendation of this risk needs.
    public func required(for risk: RiskLevel) -> Int { risk == .critical ? max(1, criticalApprovers) : 1 }

    /// When an approval of this risk requested at `requestedAt` expires.
    public func expiresAt(_ risk: RiskLevel, requestedAt: Date) -> Date {
        requestedAt.addingTimeInterval(expiry[risk] ?? Self.defaultExpiry[risk]!)
    }

    /// A pending approval for a recommendation, and its `approval.requested` event.
    public func requestApproval(for rec: Recommendation, required: Int, now: Date, ids: inout some IDGenerator) -> (Approval, DomainEvent) {
        var cache = EventDataCache()
        return requestApproval(for: rec, required: required, now: now, ids: &ids, cache: &cache)
    }

    /// `requestApproval`, with the event data shared between approvals that would have equal data.
    func requestApproval(for rec: Recommendation, required: Int, now: Date, ids: inout some IDGenerator,
                         cache: inout EventDataCache) -> (Approval, DomainEvent) {
        let approval = Approval(id: ids.next(), recommendationID: rec.id, customerID: rec.customerID,
                                riskLevel: rec.riskLevel, requestedBy: rec.agentID, requestedAt: now,
                                expiresAt: expiresAt(rec.riskLevel, requestedAt: now), requiredApprovals: required)
        let event = DomainEvent(type: .approvalRequested, customerID: rec.customerID, recommendationID: rec.id,
                                approvalID: approval.id,
                                data: cache.approvalRequested(risk: rec.riskLevel, expiresAt: approval.expiresAt,
                                                              required: required, requestedBy: rec.agentID))
        return (approval, event)
    }

    /// Applies a decision: `(approval, decision, now) -> new approval + outcome`, or why not.
    public func decide(_ approval: Approval, _ decision: ApprovalDecision, now: Date) -> Result<ApprovalTransition, ApprovalRefusal> {
        guard approval.status == .pending else {
            return .failure(.alreadyProcessed("approval \(approval.id) is already \(approval.status.rawValue)"))
        }
        if let transition = expire(approval, now: now) {
            return .failure(.expired(transition))
        }
        if decision.userID.isEmpty { return .failure(.invalid("user_id: required")) }
        if let approvers, !approvers.contains(decision.userID) {
            return .failure(.forbidden("\(decision.userID) is not on the approver list (--approvers)"))
        }
        var next = approval
        switch decision.kind {
        case .reject:
            let reason = decision.reason.trimmingCharacters(in: .whitespaces)
            if reason.isEmpty { return .failure(.invalid("reason: a rejection needs a reason")) }
            next.status = .rejected
            next.rejectedBy = decision.userID
            next.rejectedAt = now
            next.rejectionReason = reason
            return .success(ApprovalTransition(approval: next, outcome: .rejected, events: [
                event(.approvalRejected, next, ["rejected_by": .string(decision.userID), "reason": .string(reason)]),
            ]))
        case .approve:
            if decision.userID == approval.requestedBy {
                return .failure(.forbidden("\(decision.userID) made recommendation \(approval.recommendationID) and cannot approve it"))
            }
            if approval.approvers.contains(where: { $0.userID == decision.userID }) {
                return .failure(.alreadyProcessed("\(decision.userID) already approved \(approval.id); another approver is needed"))
            }
            next.approvers.append(ApprovalVote(userID: decision.userID, at: now))
            let note = decision.reason.trimmingCharacters(in: .whitespaces)
            if !note.isEmpty { next.notes = note }
            let votes: JSONValue = .array(next.approvers.map { .string($0.userID) })
            if next.approvers.count < max(1, approval.requiredApprovals) {
                return .success(ApprovalTransition(approval: next, outcome: .partiallyApproved, events: [
                    event(.approvalPartiallyApproved, next, ["user_id": .string(decision.userID), "approvers": votes,
                                                             "required_approvals": .number(Double(approval.requiredApprovals))]),
                ]))
            }
            next.status = .approved
            next.approvedBy = decision.userID
            next.approvedAt = now
            return .success(ApprovalTransition(approval: next, outcome: .approved, events: [
                event(.approvalApproved, next, ["approved_by": .string(decision.userID), "approvers": votes]),
            ]))
        }
    }

    /// A pending approval past its expiry becomes `expired`; nil when it is not due (or not pending).
    public func expire(_ approval: Approval, now: Date) -> ApprovalTransition? {
        guard approval.status == .pending, now >= approval.expiresAt else { return nil }
        var next = approval
        next.status = .expired
        return ApprovalTransition(approval: next, outcome: .expired, events: [
            event(.approvalExpired, next, ["expires_at": .string(Timestamp.string(from: approval.expiresAt))]),
        ])
    }

    private func event(_ type: EventType, _ approval: Approval, _ data: [String: JSONValue]) -> DomainEvent {
        DomainEvent(type: type, customerID: approval.customerID, recommendationID: approval.recommendationID,
                    approvalID: approval.id, data: data)
    }

    /// Parses `--approval-expiry`: `low=7d,medium=48h,high=24h,critical=4h` (units s, m, h, d;
    /// a bare number is seconds). Levels not named keep `defaults`.
    public static func parseExpiry(_ text: String, defaults: [RiskLevel: TimeInterval] = defaultExpiry) throws(ValidationError) -> [RiskLevel: TimeInterval] {
        var result = defaults
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let level = RiskLevel(rawValue: pair[0]) else {
                throw ValidationError(path: "", message: "\"\(part)\" is not level=duration (levels: low, medium, high, critical)")
            }
            guard let seconds = duration(pair[1]), seconds > 0 else {
                throw ValidationError(path: "", message: "\"\(pair[1])\" is not a positive duration like 90s, 30m, 48h or 7d")
            }
            result[level] = seconds
        }
        return result
    }

    /// A duration like `90s`, `30m`, `48h` or `7d` (a bare number is seconds); nil when unreadable.
    public static func duration(_ text: String) -> TimeInterval? {
        guard let last = text.last else { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = units[last] { return Double(text.dropLast()).map { $0 * unit } }
        return Double(text)
    }
}
