import Foundation

/// Event data already made, by what it is made of: a large coordination requests thousands of
/// approvals and plans whose events carry the same few dictionaries.
struct EventDataCache {
    struct ApprovalKey: Hashable {
        var risk: RiskLevel
        var expiresAt: Date
        var required: Int
        var requestedBy: String
    }
    private var approvals: [ApprovalKey: [String: JSONValue]] = [:]
    private var plans: [String: [String: JSONValue]] = [:]

    /// The data of an `approval.requested` event.
    mutating func approvalRequested(risk: RiskLevel, expiresAt: Date, required: Int, requestedBy: String) -> [String: JSONValue] {
        let key = ApprovalKey(risk: risk, expiresAt: expiresAt, required: required, requestedBy: requestedBy)
        if let data = approvals[key] { return data }
        let data: [String: JSONValue] = ["risk_level": .string(risk.rawValue),
                                         "expires_at": .string(Timestamp.string(from: expiresAt)),
                                         "required_approvals": .number(Double(required)),
                                         "requested_by": .string(requestedBy)]
        if approvals.count < 4096 { approvals[key] = data }
        return data
    }

    /// The data of a `plan.created` event for a plan of this action.
    mutating func planCreated(action: String) -> [String: JSONValue] {
        if let data = plans[action] { return data }
        let data: [String: JSONValue] = ["steps": .array(PlanBuilder.template(for: action).map { .string($0.action) })]
        if plans.count < 4096 { plans[action] = data }
        return data
    }
}
