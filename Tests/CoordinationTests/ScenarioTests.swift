import Foundation
import Testing
@testable import Coordination

@Suite struct ScenarioTests {
    func run(_ name: String) throws -> (CoordinationRequest, CoordinationOutcome) {
        let request = try RequestDecoding.coordinationRequest(from: try fixture(name))
        var ids = SequentialIDGenerator(prefix: "s")
        let outcome = Coordinator().coordinate(request, active: [], now: baseTime, ids: &ids)
        return (request, outcome)
    }

    @Test func scenario1ResourceConflict() throws {
        let (_, outcome) = try run("scenario1-conflict")
        let response = outcome.response
        #expect(response.totalRecommendations == 2)
        #expect(response.conflicts.count == 1)
        #expect(response.conflictsDetected == 1)
        #expect(response.conflictsResolved == 1)
        let conflict = try #require(response.conflicts.first)
        #expect(conflict.type == .resource)
        #expect(conflict.description.contains("i-3 i-4 i-5"))
        #expect(!conflict.description.contains("i-1"))
        #expect(Set(conflict.recommendationIDs) == ["rec-cost-spot", "rec-resource-scale"])
        #expect(conflict.resolved)
        #expect(response.conflicts(of: .action).isEmpty)
        #expect(response.keptIDs == ["rec-cost-spot"])
        #expect(response.discarded == [DiscardedRecommendation(id: "rec-resource-scale", reason: .conflict,
                                                               conflictID: conflict.id, relatedID: "rec-cost-spot")])
        #expect(response.approvalsRequired == 1)
        #expect(response.autoApproved == 0)
        #expect(response.approvals.first?.recommendationID == "rec-cost-spot")
        #expect(response.recommendations.first?.status == .pendingApproval)
        #expect(response.executionPlans.isEmpty)
        #expect(response.executionOrder == ["rec-cost-spot"])
        #expect(outcome.events.map(\.type) == [.conflictResolved, .recommendationDiscarded, .approvalRequested, .coordinationCompleted])
    }

    @Test func scenario2ApprovalThenPlan() throws {
        let (request, outcome) = try run("scenario2-approval")
        #expect(request.executeNow)
        let response = outcome.response
        #expect(response.approvalsRequired == 1)
        #expect(response.autoApproved == 0)
        #expect(response.executionPlans.isEmpty)
        let approval = try #require(response.approvals.first)
        #expect(approval.status == .pending)
        #expect(approval.riskLevel == .high)
        #expect(approval.requestedBy == "perf-agent-1")
        #expect(approval.expiresAt == approval.requestedAt.addingTimeInterval(24 * 3600))
        #expect(approval.requiredApprovals == 1)
        let requested = outcome.events.filter { $0.type == .approvalRequested }
        #expect(requested.count == 1)
        #expect(requested.first?.approvalID == approval.id)
        #expect(requested.first?.recommendationID == "rec-db-migrate")

        let policy = ApprovalPolicy()
        let result = policy.decide(approval, ApprovalDecision(kind: .approve, userID: "ops@example.com"),
                                   now: baseTime.addingTimeInterval(60))
        let transition = try result.get()
        #expect(transition.outcome == .approved)
        #expect(transition.approval.status == .approved)
        #expect(transition.approval.approvedBy == "ops@example.com")
        #expect(transition.events.map(\.type) == [.approvalApproved])

        var approved = try #require(outcome.kept.first)
        approved.status = .approved
        var ids = SequentialIDGenerator(prefix: "p")
        let plan = PlanBuilder.plan(for: approved, now: baseTime, ids: &ids)
        #expect(plan.steps.map(\.action) == ["migrate_database"])
        #expect(plan.recommendationID == "rec-db-migrate")
        #expect(plan.customerID == "cust-2")
        #expect(plan.status == .pending)
    }

    @Test func scenario3RollbackOnFailure() throws {
        let (_, outcome) = try run("scenario3-rollback")
        let response = outcome.response
        #expect(response.autoApproved == 1)
        #expect(response.approvalsRequired == 0)
        #expect(response.recommendations.first?.status == .approved)
        let plan = try #require(response.executionPlans.first)
        #expect(plan.steps.map(\.action) == ["take_snapshot", "migrate_workload", "validate_quality"])
        #expect(outcome.events.contains { $0.type == .planCreated && $0.planID == plan.id })

        let failing = response.recommendations[0].parameters["simulate_failure"]?.stringValue
        #expect(failing == "migrate_workload")
        var machine = PlanMachine(plan: plan)
        var events: [DomainEvent] = []
        var ids = SequentialIDGenerator(prefix: "sim")
        var now = baseTime
        loop: while true {
            now = now.addingTimeInterval(1)
            switch machine.nextAction() {
            case .start: events += machine.start(now: now)
            case .runStep(let index):
                events += machine.stepStarted(index, now: now)
                let action = machine.plan.steps[index].action
                if action == failing {
                    events += machine.stepFailed(index, error: "injected failure", now: now)
                } else {
                    let result = SimulatedActions.outcome(for: action, ids: &ids)
                    events += machine.stepSucceeded(index, result: result.result, rollbackData: result.rollbackData, now: now)
                }
            case .rollbackStep(let index): events += machine.rollbackSucceeded(index, now: now)
            case .finished: break loop
            }
        }
        #expect(events.map(\.type) == [.planStarted, .stepStarted, .stepCompleted, .stepStarted, .stepFailed,
                                       .stepRolledBack, .planRolledBack])
        #expect(events.map(\.stepIndex) == [nil, 0, 0, 1, 1, 0, nil])
        #expect(machine.plan.status == .rolledBack)
        #expect(machine.plan.steps.map(\.status) == [.rolledBack, .failed, .pending])
        #expect(machine.plan.rollbackReason == "critical_step_failed")
        #expect(events.last?.data["reason"] == "critical_step_failed")
        #expect(events.last?.data["failed_step"] == 1)
        #expect(machine.nextAction() == .finished(.rolledBack))
    }
}
