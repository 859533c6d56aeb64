import Foundation
import Testing
@testable import Coordination

@Suite struct ApprovalPolicyTests {
    let policy = ApprovalPolicy()

    func pending(_ risk: RiskLevel, policy: ApprovalPolicy = ApprovalPolicy()) -> (Approval, DomainEvent) {
        var ids = SequentialIDGenerator(prefix: "ap")
        let r = rec("rec-1", risk: risk, agent: "agent-7")
        return policy.requestApproval(for: r, required: policy.required(for: risk), now: baseTime, ids: &ids)
    }

    func approve(_ user: String) -> ApprovalDecision { ApprovalDecision(kind: .approve, userID: user) }

    @Test func requestedEvent() {
        let (approval, event) = pending(.high)
        #expect(approval.status == .pending)
        #expect(approval.requestedBy == "agent-7")
        #expect(approval.expiresAt == baseTime.addingTimeInterval(24 * 3600))
        #expect(event.type == .approvalRequested)
        #expect(event.approvalID == approval.id)
        #expect(event.data["expires_at"] == .string(Timestamp.string(from: approval.expiresAt)))
        #expect(event.data["required_approvals"] == 1)
    }

    @Test func defaultExpiries() {
        #expect(pending(.low).0.expiresAt == baseTime.addingTimeInterval(7 * 86_400))
        #expect(pending(.medium).0.expiresAt == baseTime.addingTimeInterval(48 * 3600))
        #expect(pending(.critical).0.expiresAt == baseTime.addingTimeInterval(4 * 3600))
    }

    @Test func criticalNeedsTwoDistinctApprovers() throws {
        let (approval, _) = pending(.critical)
        #expect(approval.requiredApprovals == 2)
        let first = try policy.decide(approval, approve("alice"), now: baseTime.addingTimeInterval(10)).get()
        #expect(first.outcome == .partiallyApproved)
        #expect(first.approval.status == .pending)
        #expect(first.approval.approvers.map(\.userID) == ["alice"])
        #expect(first.approval.approvedBy == nil)
        #expect(first.events.map(\.type) == [.approvalPartiallyApproved])
        #expect(first.events.first?.data["approvers"] == ["alice"])

        let again = policy.decide(first.approval, approve("alice"), now: baseTime.addingTimeInterval(20))
        guard case .failure(.alreadyProcessed) = again else {
            Issue.record("same approver twice: \(again)")
            return
        }

        let second = try policy.decide(first.approval, approve("bob"), now: baseTime.addingTimeInterval(30)).get()
        #expect(second.outcome == .approved)
        #expect(second.approval.status == .approved)
        #expect(second.approval.approvedBy == "bob")
        #expect(second.approval.approvedAt == baseTime.addingTimeInterval(30))
        #expect(second.approval.approvers.map(\.userID) == ["alice", "bob"])
        #expect(second.events.map(\.type) == [.approvalApproved])
        #expect(second.events.first?.data["approvers"] == ["alice", "bob"])
    }

    @Test func selfApprovalForbiddenButSelfRejectAllowed() throws {
        let (approval, _) = pending(.high)
        let selfApprove = policy.decide(approval, approve("agent-7"), now: baseTime)
        guard case .failure(.forbidden) = selfApprove else {
            Issue.record("self-approval: \(selfApprove)")
            return
        }
        let withdraw = try policy.decide(approval, ApprovalDecision(kind: .reject, userID: "agent-7", reason: "withdrawn"),
                                         now: baseTime).get()
        #expect(withdraw.outcome == .rejected)
        #expect(withdraw.approval.status == .rejected)
        #expect(withdraw.approval.rejectedBy == "agent-7")
        #expect(withdraw.approval.rejectionReason == "withdrawn")
        #expect(withdraw.events.map(\.type) == [.approvalRejected])
        #expect(withdraw.events.first?.data["reason"] == "withdrawn")
    }

    @Test func allowList() throws {
        var restricted = ApprovalPolicy()
        restricted.approvers = ["alice"]
        let (approval, _) = pending(.high, policy: restricted)
        let outsider = restricted.decide(approval, approve("mallory"), now: baseTime)
        guard case .failure(.forbidden) = outsider else {
            Issue.record("outsider: \(outsider)")
            return
        }
        let outsiderReject = restricted.decide(approval, ApprovalDecision(kind: .reject, userID: "mallory", reason: "no"), now: baseTime)
        guard case .failure(.forbidden) = outsiderReject else {
            Issue.record("outsider reject: \(outsiderReject)")
            return
        }
        #expect(try restricted.decide(approval, approve("alice"), now: baseTime).get().outcome == .approved)
    }

    @Test func rejectNeedsReason() {
        let (approval, _) = pending(.medium)
        for reason in ["", "   "] {
            let result = policy.decide(approval, ApprovalDecision(kind: .reject, userID: "bob", reason: reason), now: baseTime)
            guard case .failure(.invalid) = result else {
                Issue.record("reject with reason \"\(reason)\": \(result)")
                continue
            }
        }
        let empty = policy.decide(approval, approve(""), now: baseTime)
        guard case .failure(.invalid) = empty else {
            Issue.record("empty user: \(empty)")
            return
        }
    }

    @Test func decideAfterExpiry() {
        let (approval, _) = pending(.high)
        let late = baseTime.addingTimeInterval(24 * 3600 + 1)
        let result = policy.decide(approval, approve("bob"), now: late)
        guard case .failure(.expired(let transition)) = result else {
            Issue.record("late decision: \(result)")
            return
        }
        #expect(transition.outcome == .expired)
        #expect(transition.approval.status == .expired)
        #expect(transition.events.map(\.type) == [.approvalExpired])
    }

    @Test func expireOnlyWhenDue() throws {
        let (approval, _) = pending(.high)
        #expect(policy.expire(approval, now: baseTime.addingTimeInterval(3600)) == nil)
        let due = try #require(policy.expire(approval, now: approval.expiresAt))
        #expect(due.approval.status == .expired)
        #expect(due.events.first?.type == .approvalExpired)
        #expect(policy.expire(due.approval, now: approval.expiresAt.addingTimeInterval(10)) == nil)
    }

    @Test func alreadyProcessed() throws {
        let (approval, _) = pending(.high)
        let done = try policy.decide(approval, approve("bob"), now: baseTime).get().approval
        for decision in [approve("carol"), ApprovalDecision(kind: .reject, userID: "carol", reason: "late")] {
            let result = policy.decide(done, decision, now: baseTime)
            guard case .failure(.alreadyProcessed) = result else {
                Issue.record("decision on approved approval: \(result)")
                continue
            }
        }
    }

    @Test func routing() {
        let low = rec("l", risk: .low), medium = rec("m", risk: .medium)
        let high = rec("h", risk: .high), critical = rec("c", risk: .critical)
        #expect(policy.route(low, autoApprove: true) == .approvedAtOnce)
        #expect(policy.route(low, autoApprove: false) == .needsApproval(required: 1))
        #expect(policy.route(medium, autoApprove: true) == .needsApproval(required: 1))
        #expect(policy.route(high, autoApprove: true) == .needsApproval(required: 1))
        #expect(policy.route(critical, autoApprove: true) == .needsApproval(required: 2))
        var notify = ApprovalPolicy()
        notify.mediumPolicy = .notify
        #expect(notify.route(medium, autoApprove: true) == .approvedWithNotice)
        #expect(notify.route(medium, autoApprove: false) == .needsApproval(required: 1))
        notify.criticalApprovers = 3
        #expect(notify.route(critical, autoApprove: true) == .needsApproval(required: 3))
    }

    @Test func parseExpiry() throws {
        let parsed = try ApprovalPolicy.parseExpiry("low=7d,critical=30m")
        #expect(parsed[.low] == TimeInterval(604_800))
        #expect(parsed[.critical] == 1800)
        #expect(parsed[.medium] == TimeInterval(172_800))
        #expect(parsed[.high] == TimeInterval(86_400))
        let spaced = try ApprovalPolicy.parseExpiry(" medium = 90s , high=3600")
        #expect(spaced[.medium] == 90)
        #expect(spaced[.high] == 3600)
        for bad in ["low", "extreme=1h", "low=", "low=7x", "low=-5m", "low=0", "low=abc"] {
            #expect(throws: ValidationError.self, "\(bad)") { try ApprovalPolicy.parseExpiry(bad) }
        }
    }
}

@Suite struct ApprovalMessageTests {
    func parse(_ text: String) throws(ValidationError) -> ApprovalDecisionMessage {
        try ApprovalDecisionMessage.parse(Array(text.utf8))
    }

    @Test func jsonForm() throws {
        let message = try parse(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "alice@example.com", "reason": "", "reply_to": "ops:replies"}"#)
        #expect(message == ApprovalDecisionMessage(approvalID: "ap-1", decision: ApprovalDecision(kind: .approve, userID: "alice@example.com"),
                                                   replyTo: "ops:replies"))
        let reject = try parse(#"  {"approval_id": "ap-2", "decision": "reject", "user_id": "bob", "reason": "too risky", "request_id": "q1"}"#)
        #expect(reject.decision == ApprovalDecision(kind: .reject, userID: "bob", reason: "too risky"))
        #expect(reject.replyTo == nil)
        #expect(reject.requestID == "q1")
    }

    @Test func jsonErrors() {
        func path(_ text: String) -> String? {
            do { _ = try parse(text); return nil } catch { return error.path }
        }
        #expect(path(#"{"approval_id": "ap-1", "decision": "reject", "user_id": "bob"}"#) == "reason")
        #expect(path(#"{"decision": "approve", "user_id": "bob"}"#) == "approval_id")
        #expect(path(#"{"approval_id": "ap-1", "decision": "maybe", "user_id": "bob"}"#) == "decision")
        #expect(path(#"{"approval_id": "ap-1", "decision": "approve"}"#) == "user_id")
        #expect(path(#"{"approval_id": 5, "decision": "approve", "user_id": "bob"}"#) == "approval_id")
        #expect(path(#"{"approval_id": "#) == "")
    }

    @Test func plainTextForm() throws {
        let approve = try parse("approve ap-1 alice@example.com\n")
        #expect(approve == ApprovalDecisionMessage(approvalID: "ap-1", decision: ApprovalDecision(kind: .approve, userID: "alice@example.com")))
        let reject = try parse("reject ap-1 bob  not during the freeze ")
        #expect(reject.decision == ApprovalDecision(kind: .reject, userID: "bob", reason: "not during the freeze"))
        #expect(try parse("APPROVE ap-9 carol").decision.kind == .approve)
    }

    @Test(arguments: ["reject ap-1 bob", "reject ap-1 bob   ", "approve ap-1", "approve", "hello world again", "", "   \n",
                      "maybe ap-1 bob"])
    func plainTextErrors(_ text: String) {
        #expect(throws: ValidationError.self) { try parse(text) }
    }

    @Test func notUTF8() {
        #expect(throws: ValidationError.self) { try ApprovalDecisionMessage.parse([0xFF, 0xFE, 0x41]) }
    }
}
