import Foundation

/// The event types of PROTOCOL.md section 4.
public enum EventType: String, Codable, Sendable, CaseIterable {
    case coordinationCompleted = "coordination.completed"
    case conflictResolved = "conflict.resolved"
    case recommendationDiscarded = "recommendation.discarded"
    case approvalRequested = "approval.requested"
    case approvalPartiallyApproved = "approval.partially_approved"
    case approvalApproved = "approval.approved"
    case approvalRejected = "approval.rejected"
    case approvalExpired = "approval.expired"
    case planCreated = "plan.created"
    case planStarted = "plan.started"
    case stepStarted = "step.started"
    case stepCompleted = "step.completed"
    case stepFailed = "step.failed"
    case stepRolledBack = "step.rolled_back"
    case planCompleted = "plan.completed"
    case planRolledBack = "plan.rolled_back"
    case planCancelled = "plan.cancelled"
}

/// A state change the engine decided; the daemon gives it an id and a time and publishes it.
public struct DomainEvent: Sendable, Equatable {
    public var type: EventType
    public var customerID: String
    public var recommendationID: String?
    public var planID: String?
    public var approvalID: String?
    public var stepIndex: Int?
    public var data: [String: JSONValue]

    public init(type: EventType, customerID: String, recommendationID: String? = nil, planID: String? = nil,
                approvalID: String? = nil, stepIndex: Int? = nil, data: [String: JSONValue] = [:]) {
        self.type = type
        self.customerID = customerID
        self.recommendationID = recommendationID
        self.planID = planID
        self.approvalID = approvalID
        self.stepIndex = stepIndex
        self.data = data
    }
}
