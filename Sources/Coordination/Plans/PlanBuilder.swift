import Foundation

/// The seed's `generateSteps`: a recommendation's execution plan.
public enum PlanBuilder {
    /// The agent that validates quality in the seed's plans.
    public static let validationAgent = "application-agent"

    /// Steps by action (`migrate_to_spot`, `scale_down`, one step otherwise), all critical as in
    /// the seed. The recommendation's `parameters` go to every step (the seed gave them only to
    /// the single-step default; agents need them, and failure injection reads them), and
    /// `parameters.non_critical_steps` (a list of step actions) marks steps whose failure does
    /// not stop the plan.
    public static func plan(for rec: Recommendation, now: Date, ids: inout some IDGenerator) -> ExecutionPlan {
        let nonCritical = Set((rec.parameters["non_critical_steps"]?.arrayValue ?? []).compactMap(\.stringValue))
        func step(_ action: String, _ agent: String, reversible: Bool) -> ExecutionStep {
            ExecutionStep(id: ids.next(), action: action, agentID: agent, parameters: rec.parameters,
                          critical: !nonCritical.contains(action), reversible: reversible)
        }
        let steps = template(for: rec.action).map { action, validates, reversible in
            step(action, validates ? validationAgent : rec.agentID, reversible: reversible)
        }
        return ExecutionPlan(id: ids.next(), recommendationID: rec.id, customerID: rec.customerID, steps: steps, createdAt: now)
    }

    /// Steps of an action's plan: the step's action, whether the validation agent runs it
    /// (otherwise the recommending agent), whether it can be rolled back.
    static func template(for action: String) -> [(action: String, validates: Bool, reversible: Bool)] {
        switch action {
        case "migrate_to_spot": migrateToSpot
        case "scale_down": scaleDown
        default: [(action, false, false)]
        }
    }

    private typealias Template = [(action: String, validates: Bool, reversible: Bool)]
    private static let migrateToSpot: Template = [("take_snapshot", false, true), ("migrate_workload", false, true),
                                                  ("validate_quality", true, false)]
    private static let scaleDown: Template = [("validate_quality", true, false), ("scale_resources", false, true),
                                              ("validate_quality", true, false)]

    /// Steps in an action's plan (a plan draws one identifier per step, then its own).
    public static func stepCount(for action: String) -> Int {
        switch action {
        case "migrate_to_spot": migrateToSpot.count
        case "scale_down": scaleDown.count
        default: 1
        }
    }

    /// The `plan.created` event.
    public static func createdEvent(_ plan: ExecutionPlan, approvalID: String?) -> DomainEvent {
        DomainEvent(type: .planCreated, customerID: plan.customerID, recommendationID: plan.recommendationID,
                    planID: plan.id, approvalID: approvalID,
                    data: ["steps": .array(plan.steps.map { .string($0.action) })])
    }

    /// The `plan.created` event of a plan made by `plan(for:)` for a recommendation of this action.
    static func createdEvent(_ plan: ExecutionPlan, action: String, approvalID: String?, cache: inout EventDataCache) -> DomainEvent {
        DomainEvent(type: .planCreated, customerID: plan.customerID, recommendationID: plan.recommendationID,
                    planID: plan.id, approvalID: approvalID, data: cache.planCreated(action: action))
    }
}
