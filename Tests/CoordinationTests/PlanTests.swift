import Foundation
import Testing
@testable import Coordination

@Suite struct PlanBuilderTests {
    func plan(_ action: String, parameters: [String: JSONValue] = [:]) -> ExecutionPlan {
        var ids = SequentialIDGenerator(prefix: "p")
        return PlanBuilder.plan(for: rec("rec-1", action: action, agent: "cost-agent-1", parameters: parameters), now: baseTime, ids: &ids)
    }

    @Test func migrateToSpot() {
        let p = plan("migrate_to_spot")
        #expect(p.steps.map(\.action) == ["take_snapshot", "migrate_workload", "validate_quality"])
        #expect(p.steps.map(\.agentID) == ["cost-agent-1", "cost-agent-1", "application-agent"])
        #expect(p.steps.map(\.reversible) == [true, true, false])
        #expect(p.steps.allSatisfy { $0.critical && $0.status == .pending })
        #expect(p.status == .pending && p.recommendationID == "rec-1" && p.customerID == "cust-1")
        #expect(p.createdAt == baseTime)
        #expect(Set(p.steps.map(\.id) + [p.id]).count == 4)
    }

    @Test func scaleDown() {
        let p = plan("scale_down")
        #expect(p.steps.map(\.action) == ["validate_quality", "scale_resources", "validate_quality"])
        #expect(p.steps.map(\.agentID) == ["application-agent", "cost-agent-1", "application-agent"])
        #expect(p.steps.map(\.reversible) == [false, true, false])
    }

    @Test func defaultSingleStep() {
        let p = plan("enable_caching")
        #expect(p.steps.map(\.action) == ["enable_caching"])
        #expect(p.steps.first?.agentID == "cost-agent-1")
        #expect(p.steps.first?.reversible == false)
    }

    @Test func parametersAndNonCriticalSteps() {
        let parameters: [String: JSONValue] = ["target": "spot", "count": 3, "non_critical_steps": ["validate_quality"]]
        let p = plan("migrate_to_spot", parameters: parameters)
        #expect(p.steps.allSatisfy { $0.parameters == parameters })
        #expect(p.steps.map(\.critical) == [true, true, false])
        let event = PlanBuilder.createdEvent(p, approvalID: "ap-1")
        #expect(event.type == .planCreated && event.planID == p.id && event.approvalID == "ap-1")
        #expect(event.data["steps"] == ["take_snapshot", "migrate_workload", "validate_quality"])
    }
}

@Suite struct PlanMachineTests {
    func machine(_ action: String = "migrate_to_spot", parameters: [String: JSONValue] = [:]) -> PlanMachine {
        var ids = SequentialIDGenerator(prefix: "p")
        return PlanMachine(plan: PlanBuilder.plan(for: rec("rec-1", action: action, parameters: parameters), now: baseTime, ids: &ids))
    }

    /// Drives the machine to the end; `fail` names step actions (by index) that fail and rollbacks that fail.
    func drive(_ m: inout PlanMachine, failSteps: Set<Int> = [], failRollbacks: Set<Int> = []) -> [DomainEvent] {
        var events: [DomainEvent] = []
        var now = baseTime
        for _ in 0..<50 {
            now = now.addingTimeInterval(1)
            switch m.nextAction() {
            case .start: events += m.start(now: now)
            case .runStep(let i):
                events += m.stepStarted(i, now: now)
                now = now.addingTimeInterval(0.25)
                if failSteps.contains(i) {
                    events += m.stepFailed(i, error: "boom \(i)", now: now)
                } else {
                    events += m.stepSucceeded(i, result: ["ok": true], rollbackData: ["i": .number(Double(i))], now: now)
                }
            case .rollbackStep(let i):
                if failRollbacks.contains(i) {
                    events += m.rollbackFailed(i, error: "rollback boom \(i)", now: now)
                } else {
                    events += m.rollbackSucceeded(i, now: now)
                }
            case .finished: return events
            }
        }
        Issue.record("plan did not finish")
        return events
    }

    @Test func allSucceed() {
        var m = machine()
        let events = drive(&m)
        #expect(events.map(\.type) == [.planStarted, .stepStarted, .stepCompleted, .stepStarted, .stepCompleted,
                                       .stepStarted, .stepCompleted, .planCompleted])
        #expect(m.plan.status == .completed)
        #expect(m.plan.steps.allSatisfy { $0.status == .completed && $0.durationMs == 250 })
        #expect(m.plan.steps[0].rollbackData == ["i": 0])
        #expect(events.last?.data["failed_steps"] == 0)
        #expect(m.plan.completedAt != nil && m.plan.totalDurationMs > 0)
    }

    @Test func nonCriticalFailureGoesOn() {
        var m = machine("scale_down", parameters: ["non_critical_steps": ["scale_resources"]])
        let events = drive(&m, failSteps: [1])
        #expect(m.plan.status == .completed)
        #expect(m.plan.steps.map(\.status) == [.completed, .failed, .completed])
        #expect(m.plan.steps[1].error == "boom 1")
        #expect(m.plan.rollbackReason == nil)
        #expect(events.filter { $0.type == .stepFailed }.first?.data["critical"] == false)
        #expect(events.last?.type == .planCompleted)
        #expect(events.last?.data["failed_steps"] == 1)
    }

    @Test func failingRollbackIsRecordedAndOthersRun() {
        var m = machine("migrate_to_spot")
        let events = drive(&m, failSteps: [2], failRollbacks: [1])
        #expect(m.plan.status == .rolledBack)
        #expect(m.plan.steps.map(\.status) == [.rolledBack, .completed, .failed])
        #expect(m.plan.steps[1].rollbackError == "rollback boom 1")
        #expect(m.plan.steps[0].rollbackError == nil)
        #expect(events.map(\.type) == [.planStarted, .stepStarted, .stepCompleted, .stepStarted, .stepCompleted,
                                       .stepStarted, .stepFailed, .stepFailed, .stepRolledBack, .planRolledBack])
        #expect(events[7].data["rollback"] == true)
        #expect(events[7].stepIndex == 1)
        #expect(events.last?.data["rollback_errors"] == 1)
        #expect(events.last?.data["failed_step"] == 2)
    }

    @Test func failureOfFirstStepNeedsNoRollback() {
        var m = machine("migrate_to_spot")
        let events = drive(&m, failSteps: [0])
        #expect(events.map(\.type) == [.planStarted, .stepStarted, .stepFailed, .planRolledBack])
        #expect(m.plan.steps.map(\.status) == [.failed, .pending, .pending])
    }

    @Test func abandonMidPlan() throws {
        var m = machine("migrate_to_spot")
        _ = m.start(now: baseTime)
        _ = m.stepStarted(0, now: baseTime)
        _ = m.stepSucceeded(0, result: [:], rollbackData: ["snapshot_id": "snap-1"], now: baseTime)
        _ = m.stepStarted(1, now: baseTime)
        var events = m.abandon(reason: "worker_lost", now: baseTime.addingTimeInterval(5))
        #expect(events.map(\.type) == [.stepFailed])
        #expect(m.plan.steps[1].status == .failed)
        #expect(m.plan.steps[1].error?.contains("worker_lost") == true)
        #expect(m.nextAction() == .rollbackStep(0))
        events += m.rollbackSucceeded(0, now: baseTime.addingTimeInterval(6))
        #expect(events.map(\.type) == [.stepFailed, .stepRolledBack, .planRolledBack])
        #expect(events.last?.data["reason"] == "worker_lost")
        #expect(m.plan.status == .rolledBack)
        #expect(m.plan.rollbackReason == "worker_lost")
        #expect(m.plan.steps.map(\.status) == [.rolledBack, .failed, .pending])
        #expect(m.abandon(reason: "worker_lost", now: baseTime).isEmpty)
    }

    @Test func abandonWithNothingToRollBack() {
        var m = machine("enable_caching")
        _ = m.start(now: baseTime)
        _ = m.stepStarted(0, now: baseTime)
        let events = m.abandon(reason: "worker_lost", now: baseTime)
        #expect(events.map(\.type) == [.stepFailed, .planRolledBack])
        #expect(m.plan.status == .rolledBack)
    }

    @Test func abandonPendingCancels() {
        var m = machine()
        let events = m.abandon(reason: "worker_lost", now: baseTime)
        #expect(events.map(\.type) == [.planCancelled])
        #expect(m.plan.status == .cancelled)
    }

    @Test func cancel() {
        var m = machine()
        let events = m.cancel(reason: "dependency rec-0 failed", now: baseTime)
        #expect(events.map(\.type) == [.planCancelled])
        #expect(events.first?.data["reason"] == "dependency rec-0 failed")
        #expect(m.plan.status == .cancelled)
        #expect(m.plan.cancelReason == "dependency rec-0 failed")
        #expect(m.nextAction() == .finished(.cancelled))
        #expect(m.cancel(reason: "again", now: baseTime).isEmpty)
        #expect(m.start(now: baseTime).isEmpty)
    }

    @Test func simulatedActions() {
        var ids = SequentialIDGenerator(prefix: "x")
        let snapshot = SimulatedActions.outcome(for: "take_snapshot", ids: &ids)
        #expect(snapshot.result["snapshot_id"] == snapshot.rollbackData["snapshot_id"])
        #expect(snapshot.result["size_gb"] == 100)
        #expect(SimulatedActions.outcome(for: "scale_resources", ids: &ids).rollbackData == ["restore_count": 5])
        #expect(SimulatedActions.outcome(for: "anything", ids: &ids).result.isEmpty)
        #expect(SimulatedActions.rollbackDuration(for: "migrate_workload") == 1)
    }
}
