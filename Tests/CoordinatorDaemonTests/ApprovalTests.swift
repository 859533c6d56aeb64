import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Approval decisions over a real Redis", .sharesMachine)
    struct ApprovalTests {
        /// Coordinates one recommendation needing approval and returns the approval id.
        func pendingApproval(_ h: Harness, risk: String = "high", agent: String = "perf-agent-1", id: String = "rec-1",
                             customer: String = "cust-1", executeNow: Bool = true) throws -> String {
            try h.push(Wire.coordinate("req-\(id)", customer: customer, replyTo: "test:coord", executeNow: executeNow,
                                       [Wire.recommendation(id, agent: agent, action: "migrate_database", risk: risk, resources: [id])]))
            let result = try #require((try h.reply(on: "test:coord"))["result"] as? [String: Any])
            return try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
        }

        func decide(_ h: Harness, _ decision: [String: Any]) throws -> [String: Any] {
            var message = decision
            message["reply_to"] = "test:decisions"
            try h.push(Wire.json(message), to: "coord:approvals")
            return try h.reply(on: "test:decisions")
        }

        func code(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }

        @Test("JSON approve replies with the approval and its plan; a second decision is already_processed")
        func approveJSON() throws {
            let h = try Harness()
            try h.startDaemon()
            let id = try pendingApproval(h)
            let reply = try decide(h, ["approval_id": id, "decision": "approve", "user_id": "alice@example.com"])
            #expect(reply["kind"] as? String == "approval")
            let result = try #require(reply["result"] as? [String: Any])
            #expect(result["status"] as? String == "approved")
            #expect(result["approved_by"] as? String == "alice@example.com")
            let planID = try #require(result["plan_id"] as? String)
            _ = try h.waitForPlan(planID, status: "completed")
            #expect(code(try decide(h, ["approval_id": id, "decision": "reject", "user_id": "bob", "reason": "late"])) == "already_processed")
        }

        @Test("unknown approval, reject without reason, self-approval, allow-list")
        func refusals() throws {
            let h = try Harness()
            try h.startDaemon { $0.policy.approvers = ["alice@example.com", "perf-agent-1"] }
            let id = try pendingApproval(h)
            #expect(code(try decide(h, ["approval_id": "missing", "decision": "approve", "user_id": "alice@example.com"])) == "not_found")
            #expect(code(try decide(h, ["approval_id": id, "decision": "reject", "user_id": "alice@example.com"])) == "invalid_request")
            #expect(code(try decide(h, ["approval_id": id, "decision": "approve", "user_id": "perf-agent-1"])) == "forbidden")
            #expect(code(try decide(h, ["approval_id": id, "decision": "approve", "user_id": "mallory@example.com"])) == "forbidden")
            #expect(try h.hlen(h.keys.active(customer: "cust-1")) == 1)
            // plain text reject without a reason is malformed: a dead letter saying why
            try h.push("reject \(id) alice@example.com", to: "coord:approvals")
            try h.wait("dead letter") { try h.deadLetters().contains { $0["raw"] as? String == "reject \(id) alice@example.com" } }
            let dead = try #require(try h.deadLetters().first { $0["raw"] as? String == "reject \(id) alice@example.com" })
            #expect(dead["queue"] as? String == "coord:approvals")
            #expect(Harness.code(dead) == "invalid_request")
            // the agent may withdraw its own recommendation
            let withdrawn = try decide(h, ["approval_id": id, "decision": "reject", "user_id": "perf-agent-1", "reason": "withdrawn"])
            #expect((withdrawn["result"] as? [String: Any])?["status"] as? String == "rejected")
            #expect(try h.events().contains { $0["type"] as? String == "approval.rejected" })
            // a rejected recommendation is no longer active
            #expect(try h.hlen(h.keys.active(customer: "cust-1")) == 0)
        }

        @Test("critical needs two distinct approvers")
        func criticalDoubleApproval() throws {
            let h = try Harness()
            try h.startDaemon()
            let id = try pendingApproval(h, risk: "critical")
            let first = try decide(h, ["approval_id": id, "decision": "approve", "user_id": "alice"])
            #expect((first["result"] as? [String: Any])?["status"] as? String == "pending")
            #expect(try h.events().contains { $0["type"] as? String == "approval.partially_approved" })
            #expect(code(try decide(h, ["approval_id": id, "decision": "approve", "user_id": "alice"])) == "already_processed")
            try h.push("approve \(id) bob", to: "coord:approvals")
            try h.wait("approval.approved") { try h.events().contains { $0["type"] as? String == "approval.approved" } }
            let stored = try Harness.object(try #require(try h.redis.send("GET", h.keys.approval(id)).bytes))
            #expect(stored["status"] as? String == "approved")
            #expect(stored["approved_by"] as? String == "bob")
            #expect((stored["approvers"] as? [[String: Any]])?.compactMap { $0["user_id"] as? String } == ["alice", "bob"])
        }

        @Test("overdue pending approvals expire by themselves, with an event; a later decision is already_processed")
        func expiry() throws {
            let h = try Harness()
            try h.startDaemon { $0.policy.expiry[.high] = 1 }
            let id = try pendingApproval(h)
            #expect(try h.zcard(h.keys.pendingApprovals) == 1)
            try h.wait("approval.expired", timeout: 10) { try h.events().contains { $0["type"] as? String == "approval.expired" } }
            let stored = try Harness.object(try #require(try h.redis.send("GET", h.keys.approval(id)).bytes))
            #expect(stored["status"] as? String == "expired")
            #expect(try h.zcard(h.keys.pendingApprovals) == 0)
            // The sweeper has expired it (the event was seen): it is no longer pending, so a decision
            // now is already_processed; `expired` is for a decision that beats the sweeper.
            let late = try decide(h, ["approval_id": id, "decision": "approve", "user_id": "alice"])
            #expect(code(late) == "already_processed")
            #expect(try h.events().filter { $0["type"] as? String == "approval.expired" }.count == 1)
        }

        @Test("two daemons racing on the same approvals: exactly one decision wins each")
        func racingDecisions() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            var ids: [String] = []
            for n in 0..<100 { ids.append(try pendingApproval(h, id: "race-\(n)", executeNow: false)) }
            let before = try h.processed(by: h.daemons, total: ids.count)
            try h.waitUntilReady()
            for id in ids {
                try h.push(Wire.json(["approval_id": id, "decision": "approve", "user_id": "alice", "reply_to": "test:race"]), to: "coord:approvals")
                try h.push(Wire.json(["approval_id": id, "decision": "reject", "user_id": "bob", "reason": "no", "reply_to": "test:race"]), to: "coord:approvals")
            }
            var ok = 0, refused = 0
            for _ in 0..<(ids.count * 2) {
                let reply = try h.reply(on: "test:race")
                if reply["ok"] as? Bool == true { ok += 1 } else if code(reply) == "already_processed" { refused += 1 }
            }
            #expect(ok == ids.count)
            #expect(refused == ids.count)
            let finals = try h.events().filter { ["approval.approved", "approval.rejected"].contains($0["type"] as? String ?? "") }
            #expect(finals.count == ids.count)
            #expect(Set(finals.compactMap { $0["approval_id"] as? String }).count == ids.count)
            // A race needs two runners: each daemon committed some of the 200 decisions.
            try h.expectEveryDaemonWorked(total: ids.count * 2, since: before)
        }
    }
}
