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
///
/// `data` is built when read: a large coordination emits one event per conflict and per
/// discarded recommendation, and their data is the conflict or discard itself, so those events
/// point into the coordination's (shared) lists and make the dictionary only for whoever looks.
public struct DomainEvent: Sendable, Equatable {
    /// What happened.
    public var type: EventType
    /// The customer it happened to.
    public var customerID: String
    /// The recommendation concerned, if any.
    public var recommendationID: String?
    /// The plan concerned, if any.
    public var planID: String?
    /// The approval concerned, if any.
    public var approvalID: String?
    /// The step concerned, for step events.
    public var stepIndex: Int?
    var payload: Payload

    enum Payload: Sendable {
        case dictionary([String: JSONValue])
        case conflict(Int, CoordinationRecord)
        case discarded(Int, CoordinationRecord)

        var dictionary: [String: JSONValue] {
            switch self {
            case .dictionary(let data):
                return data
            case .conflict(let index, let record):
                let conflict = record.conflicts[index]
                return ["conflict_id": .string(conflict.id), "type": .string(conflict.type.rawValue),
                        "recommendation_ids": .array(conflict.recommendationIDs.map { .string($0) }),
                        "resolution": .string(conflict.resolution ?? "")]
            case .discarded(let index, let record):
                let item = record.discarded[index]
                var data: [String: JSONValue] = ["reason": .string(item.reason.rawValue)]
                if let c = item.conflictID { data["conflict_id"] = .string(c) }
                if let a = item.activeID { data["active_id"] = .string(a) }
                if let r = item.relatedID { data["related_id"] = .string(r) }
                return data
            }
        }
    }

    /// The event's details (PROTOCOL.md section 4), built when read.
    public var data: [String: JSONValue] {
        get { payload.dictionary }
        set { payload = .dictionary(newValue) }
    }

    /// An event with its details.
    public init(type: EventType, customerID: String, recommendationID: String? = nil, planID: String? = nil,
                approvalID: String? = nil, stepIndex: Int? = nil, data: [String: JSONValue] = [:]) {
        self.init(type: type, customerID: customerID, recommendationID: recommendationID, planID: planID,
                  approvalID: approvalID, stepIndex: stepIndex, payload: .dictionary(data))
    }

    init(type: EventType, customerID: String, recommendationID: String? = nil, planID: String? = nil,
         approvalID: String? = nil, stepIndex: Int? = nil, payload: Payload) {
        self.type = type
        self.customerID = customerID
        self.recommendationID = recommendationID
        self.planID = planID
        self.approvalID = approvalID
        self.stepIndex = stepIndex
        self.payload = payload
    }

    /// Equal when every field and the data are equal.
    public static func == (a: DomainEvent, b: DomainEvent) -> Bool {
        a.type == b.type && a.customerID == b.customerID && a.recommendationID == b.recommendationID
            && a.planID == b.planID && a.approvalID == b.approvalID && a.stepIndex == b.stepIndex && a.data == b.data
    }
}

/// The conflicts and discards of one coordination, shared by its events. The engine makes the
/// events while it builds the lists, and sets the lists once, before it hands the events out.
final class CoordinationRecord: @unchecked Sendable {
    private(set) var conflicts: [Conflict]
    private(set) var discarded: [DiscardedRecommendation]

    init(conflicts: [Conflict] = [], discarded: [DiscardedRecommendation] = []) {
        self.conflicts = conflicts
        self.discarded = discarded
    }

    /// Sets the lists; only before any event that points here is read.
    func fill(conflicts: [Conflict], discarded: [DiscardedRecommendation]) {
        self.conflicts = conflicts
        self.discarded = discarded
    }
}
