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

/// A plan as a state machine driven by step outcomes (PROTOCOL.md section 5). It decides what
/// happens next and which events each transition emits, in order; whoever runs the steps
/// (the daemon's executor) persists the plan after every transition.
///
/// A failed critical step rolls back the completed reversible steps in reverse order; a
/// failed non-critical step is marked failed and the plan goes on; a rollback that fails is
/// recorded on its step (`rollback_error`) and the other rollbacks still run.
public struct PlanMachine: Sendable, Equatable {
    public private(set) var plan: ExecutionPlan

    public enum Action: Sendable, Equatable {
        /// Not started: call `start`.
        case start
        case runStep(Int)
        case rollbackStep(Int)
        case finished(ExecutionStatus)
    }

    public init(plan: ExecutionPlan) { self.plan = plan }

    public func nextAction() -> Action {
        switch plan.status {
        case .pending: return .start
        case .completed, .failed, .rolledBack, .cancelled: return .finished(plan.status)
        case .running: break
        }
        if plan.rollbackReason != nil {
            if let index = nextRollback() { return .rollbackStep(index) }
            return .finished(.rolledBack)
        }
        if let index = plan.steps.firstIndex(where: { $0.status == .running || $0.status == .pending }) {
            return .runStep(index)
        }
        return .finished(.completed)
    }

    public mutating func start(now: Date) -> [DomainEvent] {
        guard plan.status == .pending else { return [] }
        plan.status = .running
        plan.startedAt = now
        plan.currentStep = 0
        return [event(.planStarted, data: ["steps": .number(Double(plan.steps.count))])] + settle(now: now)
    }

    public mutating func stepStarted(_ index: Int, now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        plan.currentStep = index
        plan.steps[index].status = .running
        plan.steps[index].startedAt = now
        return [stepEvent(.stepStarted, index, ["agent_id": .string(plan.steps[index].agentID)])]
    }

    public mutating func stepSucceeded(_ index: Int, result: [String: JSONValue], rollbackData: [String: JSONValue], now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        var step = plan.steps[index]
        step.status = .completed
        step.result = result
        step.rollbackData = rollbackData.isEmpty ? nil : rollbackData
        finishTiming(&step, now)
        plan.steps[index] = step
        return [stepEvent(.stepCompleted, index, ["result": .object(result), "duration_ms": .number(Double(step.durationMs))])]
            + settle(now: now)
    }

    public mutating func stepFailed(_ index: Int, error: String, now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        var step = plan.steps[index]
        step.status = .failed
        step.error = error
        finishTiming(&step, now)
        plan.steps[index] = step
        if step.critical && plan.rollbackReason == nil { plan.rollbackReason = "critical_step_failed" }
        return [stepEvent(.stepFailed, index, ["error": .string(error), "critical": .bool(step.critical)])] + settle(now: now)
    }

    public mutating func rollbackSucceeded(_ index: Int, now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        plan.steps[index].status = .rolledBack
        plan.currentStep = index
        return [stepEvent(.stepRolledBack, index, [:])] + settle(now: now)
    }

    /// The rollback of a step failed: recorded on the step, reported as `step.failed` with
    /// `data.rollback = true`, and the remaining rollbacks still run.
    public mutating func rollbackFailed(_ index: Int, error: String, now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        plan.steps[index].rollbackError = error
        plan.currentStep = index
        return [stepEvent(.stepFailed, index, ["error": .string(error), "rollback": .bool(true)])] + settle(now: now)
    }

    /// A plan that will not run (a dependency did not complete).
    public mutating func cancel(reason: String, now: Date) -> [DomainEvent] {
        guard !plan.status.isFinal else { return [] }
        plan.status = .cancelled
        plan.cancelReason = reason
        plan.completedAt = now
        return [event(.planCancelled, data: ["reason": .string(reason)])]
    }

    /// The daemon that ran the plan is gone: a step it was running counts as failed, and what
    /// completed is rolled back (`plan.rolled_back` with `data.reason` = `reason`).
    public mutating func abandon(reason: String, now: Date) -> [DomainEvent] {
        switch plan.status {
        case .pending: return cancel(reason: reason, now: now)
        case .running: break
        default: return []
        }
        var events: [DomainEvent] = []
        for index in plan.steps.indices where plan.steps[index].status == .running {
            var step = plan.steps[index]
            step.status = .failed
            step.error = "the daemon running this step was lost (\(reason))"
            finishTiming(&step, now)
            plan.steps[index] = step
            events.append(stepEvent(.stepFailed, index, ["error": .string(step.error!), "critical": .bool(step.critical)]))
        }
        plan.rollbackReason = reason
        return events + settle(now: now)
    }

    // MARK: - Internals

    private func nextRollback() -> Int? {
        plan.steps.indices.last { index in
            let step = plan.steps[index]
            return step.status == .completed && step.reversible && step.rollbackError == nil
        }
    }

    /// Ends the plan when nothing is left to do.
    private mutating func settle(now: Date) -> [DomainEvent] {
        guard plan.status == .running else { return [] }
        if let reason = plan.rollbackReason {
            guard nextRollback() == nil else { return [] }
            plan.status = .rolledBack
            plan.rolledBackAt = now
            plan.completedAt = now
            plan.totalDurationMs = milliseconds(from: plan.startedAt, to: now)
            var data: [String: JSONValue] = ["reason": .string(reason)]
            if let failed = plan.steps.firstIndex(where: { $0.status == .failed && $0.critical }) {
                data["failed_step"] = .number(Double(failed))
            }
            let rollbackErrors = plan.steps.filter { $0.rollbackError != nil }.count
            if rollbackErrors > 0 { data["rollback_errors"] = .number(Double(rollbackErrors)) }
            return [event(.planRolledBack, data: data)]
        }
        guard !plan.steps.contains(where: { $0.status == .pending || $0.status == .running }) else { return [] }
        plan.status = .completed
        plan.completedAt = now
        plan.totalDurationMs = milliseconds(from: plan.startedAt, to: now)
        let failed = plan.steps.filter { $0.status == .failed }.count
        return [event(.planCompleted, data: ["failed_steps": .number(Double(failed)),
                                             "total_duration_ms": .number(Double(plan.totalDurationMs))])]
    }

    private func finishTiming(_ step: inout ExecutionStep, _ now: Date) {
        step.completedAt = now
        step.durationMs = milliseconds(from: step.startedAt ?? now, to: now)
    }

    private func milliseconds(from start: Date?, to end: Date) -> Int {
        guard let start else { return 0 }
        return max(0, Int((end.timeIntervalSince(start) * 1000).rounded()))
    }

    private func event(_ type: EventType, data: [String: JSONValue]) -> DomainEvent {
        DomainEvent(type: type, customerID: plan.customerID, recommendationID: plan.recommendationID, planID: plan.id, data: data)
    }

    private func stepEvent(_ type: EventType, _ index: Int, _ extra: [String: JSONValue]) -> DomainEvent {
        var data = extra
        data["action"] = .string(plan.steps[index].action)
        data["step_id"] = .string(plan.steps[index].id)
        return DomainEvent(type: type, customerID: plan.customerID, recommendationID: plan.recommendationID,
                           planID: plan.id, stepIndex: index, data: data)
    }
}

/// The seed's simulated actions (`executeStep` / `rollbackStep`): their results, rollback
/// data and durations. Any other action succeeds after a short delay with an empty result.
public enum SimulatedActions {
    public struct Outcome: Sendable, Equatable {
        public var result: [String: JSONValue]
        public var rollbackData: [String: JSONValue]
        /// How long the seed took, in seconds (scaled by `--sim-speed`).
        public var seedDuration: TimeInterval
    }

    public static func outcome(for action: String, ids: inout some IDGenerator) -> Outcome {
        switch action {
        case "take_snapshot":
            let snapshot = "snap-" + ids.next().prefix(8)
            return Outcome(result: ["snapshot_id": .string(snapshot), "size_gb": 100],
                           rollbackData: ["snapshot_id": .string(snapshot)], seedDuration: 0.5)
        case "scale_resources":
            return Outcome(result: ["previous_count": 5, "new_count": 3, "scaled_down": 2],
                           rollbackData: ["restore_count": 5], seedDuration: 1)
        case "migrate_workload":
            return Outcome(result: ["migrated_instances": 3, "status": "completed"], rollbackData: [:], seedDuration: 2)
        case "validate_quality":
            return Outcome(result: ["quality_score": 0.95, "passed": true], rollbackData: [:], seedDuration: 0.5)
        default:
            return Outcome(result: [:], rollbackData: [:], seedDuration: 0.1)
        }
    }

    public static func rollbackDuration(for action: String) -> TimeInterval {
        switch action {
        case "take_snapshot": 0.2
        case "scale_resources": 0.5
        case "migrate_workload": 1
        default: 0
        }
    }
}
