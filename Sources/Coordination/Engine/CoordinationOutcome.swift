/// What one `coordinate` request decided.
public struct CoordinationOutcome: Sendable {
    /// The reply's result (PROTOCOL.md section 2.2).
    public var response: CoordinationResponse
    /// The kept recommendations with their new status, in execution order.
    public var kept: [Recommendation]
    /// Approvals requested for the kept recommendations that need a person.
    public var approvals: [Approval]
    /// Plans created for the kept recommendations approved at once.
    public var plans: [ExecutionPlan]
    /// In the order they happened: conflicts resolved, recommendations discarded, approvals
    /// requested (or approved), plans created, and `coordination.completed` last.
    public var events: [DomainEvent]
}
