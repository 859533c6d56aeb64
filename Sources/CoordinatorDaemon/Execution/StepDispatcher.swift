import Coordination
import Foundation
import RedisClient

/// What became of a step (or of its rollback).
enum StepOutcome: Sendable {
    case success(result: [String: JSONValue], rollbackData: [String: JSONValue])
    case failure(String)
}

/// How a dispatched step will end.
enum StepDispatch {
    /// Known at once (simulated at `--sim-speed 0`).
    case done(StepOutcome)
    /// Known now, due at a later time (simulated with delays).
    case due(Date, StepOutcome)
    /// Sent to an agent: its answer comes on the results queue, or the deadline fails it.
    case sent(StepAttempt)
}

/// Runs plan steps somewhere: in process (`simulated`) or on agents (`agents`).
protocol StepDispatcher: Sendable {
    func dispatch(_ plan: ExecutionPlan, step index: Int, rollback: Bool, now: Date) -> StepDispatch
}

/// The seed's simulated actions (PROTOCOL.md section 5): never touches anything real.
/// `parameters.simulate_failure` names an action to fail; `parameters.simulate_rollback_failure`
/// names one whose rollback fails.
struct SimulatedDispatcher: StepDispatcher {
    let speed: Double

    func dispatch(_ plan: ExecutionPlan, step index: Int, rollback: Bool, now: Date) -> StepDispatch {
        let step = plan.steps[index]
        var ids = UUIDGenerator()
        let simulated = SimulatedActions.outcome(for: step.action, ids: &ids)
        let outcome: StepOutcome
        let seconds: TimeInterval
        if rollback {
            seconds = SimulatedActions.rollbackDuration(for: step.action)
            if step.parameters["simulate_rollback_failure"] == .string(step.action) {
                outcome = .failure("simulated rollback failure of \(step.action)")
            } else {
                outcome = .success(result: [:], rollbackData: [:])
            }
        } else {
            seconds = simulated.seedDuration
            if step.parameters["simulate_failure"] == .string(step.action) {
                outcome = .failure("simulated failure of \(step.action)")
            } else {
                outcome = .success(result: simulated.result, rollbackData: simulated.rollbackData)
            }
        }
        let delay = seconds * speed
        return delay <= 0 ? .done(outcome) : .due(now.addingTimeInterval(delay), outcome)
    }
}

/// Hands each step to its agent on `coord:agent:<agent_id>:steps` (PROTOCOL.md section 5).
struct AgentDispatcher: StepDispatcher {
    let keys: Keys
    let timeout: TimeInterval

    func dispatch(_ plan: ExecutionPlan, step index: Int, rollback: Bool, now: Date) -> StepDispatch {
        let step = plan.steps[index]
        let deadline = now.addingTimeInterval(timeout)
        let token = StepAttempt.newToken()
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("plan_id"); w.string(plan.id)
        w.key("step_id"); w.string(step.id)
        w.key("step_index"); w.int(index)
        w.key("action"); w.string(step.action)
        w.key("parameters"); w.value(.object(step.parameters))
        w.key("rollback"); w.bool(rollback)
        if rollback {
            w.key("rollback_data"); w.value(.object(step.rollbackData ?? [:]))
        }
        w.key("attempt"); w.string(token)
        w.key("deadline"); w.string(Timestamp.string(from: deadline))
        w.endObject()
        return .sent(StepAttempt(index: index, stepID: step.id, rollback: rollback, token: token,
                                 deadlineMs: Int((deadline.timeIntervalSince1970 * 1000).rounded(.up)),
                                 list: keys.agentSteps(step.agentID), message: w.bytes))
    }
}
