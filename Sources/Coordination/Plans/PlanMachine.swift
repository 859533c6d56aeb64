import Foundation

/// A plan as a state machine driven by step outcomes (PROTOCOL.md section 5). It decides what
/// happens next and which events each transition emits, in order; whoever runs the steps
/// (the daemon's executor) persists the plan after every transition.
///
/// A failed critical step rolls back the completed reversible steps in reverse order; a
/// failed non-critical step is marked failed and the plan goes on; a rollback that fails is
/// recorded on its step (`rollback_error`) and the other rollbacks still run.
public struct PlanMachine: Sendable, Equatable {
    /// The plan as the transitions so far left it; persist it after each one.
    public private(set) var plan: ExecutionPlan

    /// What the runner does next.
    public enum Action: Sendable, Equatable {
        /// Not started: call `start`.
        case start
        /// Run the step at this index, then report `stepSucceeded` or `stepFailed`.
        case runStep(Int)
        /// Undo the step at this index, then report `rollbackSucceeded` or `rollbackFailed`.
        case rollbackStep(Int)
        /// Nothing more: the plan ended with this status.
        case finished(ExecutionStatus)
    }

    /// A machine resuming `plan` where it stands (a new plan is `pending`).
    public init(plan: ExecutionPlan) { self.plan = plan }

    /// What to do next, read from the plan alone (so a plan taken over after a crash resumes
    /// correctly).
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

    /// `pending` to `running`: sets `started_at` and emits `plan.started` (and, for a plan without
    /// steps, `plan.completed`). Does nothing to a plan already started.
    public mutating func start(now: Date) -> [DomainEvent] {
        guard plan.status == .pending else { return [] }
        plan.status = .running
        plan.startedAt = now
        plan.currentStep = 0
        return [event(.planStarted, data: ["steps": .number(Double(plan.steps.count))])] + settle(now: now)
    }

    /// The step at `index` is running: `step.started`. An index out of range changes nothing.
    public mutating func stepStarted(_ index: Int, now: Date) -> [DomainEvent] {
        guard plan.steps.indices.contains(index) else { return [] }
        plan.currentStep = index
        plan.steps[index].status = .running
        plan.steps[index].startedAt = now
        return [stepEvent(.stepStarted, index, ["agent_id": .string(plan.steps[index].agentID)])]
    }

    /// The step at `index` completed with `result` (and what its rollback needs): `step.completed`,
    /// then `plan.completed` when it was the last one, or the rollback's end when one is under way.
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

    /// The step at `index` failed: `step.failed`. A critical step starts the rollback of the completed
    /// reversible steps (`rollback_reason` `critical_step_failed`); a non-critical one lets the plan go on.
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

    /// The step at `index` was undone: `step.rolled_back`, and `plan.rolled_back` after the last
    /// rollback.
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
