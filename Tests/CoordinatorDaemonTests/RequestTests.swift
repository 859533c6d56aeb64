import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

/// The fixtures shipped with the project (Tests/CoordinationTests/Fixtures).
func fixture(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("CoordinationTests/Fixtures/\(name).json")
    return try String(contentsOf: url, encoding: .utf8)
}

extension RealRedis {
    @Suite("Requests over a real Redis", .sharesMachine)
    struct RequestTests {
        @Test("scenario 1: one resource conflict, higher savings kept, one approval")
        func scenario1() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(fixture("scenario1-conflict"))
            let reply = try h.reply(on: "test:replies:scenario-1")
            #expect(reply["ok"] as? Bool == true)
            #expect(reply["request_id"] as? String == "scenario-1")
            #expect(reply["kind"] as? String == "coordinate")
            let result = try #require(reply["result"] as? [String: Any])
            #expect(result["conflicts_detected"] as? Int == 1)
            #expect(result["recommendations_kept"] as? Int == 1)
            #expect(result["approvals_required"] as? Int == 1)
            let conflicts = try #require(result["conflicts"] as? [[String: Any]])
            #expect(conflicts.count == 1)
            #expect(conflicts.first?["type"] as? String == "resource")
            let kept = (result["recommendations"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(kept == ["rec-cost-spot"])
            let discarded = try #require(result["discarded"] as? [[String: Any]])
            #expect(discarded.first?["id"] as? String == "rec-resource-scale")
            #expect(discarded.first?["conflict_id"] as? String == conflicts.first?["id"] as? String)
            let types = try h.events().compactMap { $0["type"] as? String }
            #expect(types.contains("approval.requested"))
            #expect(types.contains("conflict.resolved"))
            #expect(types.last == "coordination.completed")
        }

        @Test("scenario 2: a person approves with one plain-text line; the plan runs to completed")
        func scenario2() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(fixture("scenario2-approval"))
            let reply = try h.reply(on: "test:replies:scenario-2")
            let result = try #require(reply["result"] as? [String: Any])
            #expect(result["approvals_required"] as? Int == 1)
            #expect(result["auto_approved"] as? Int == 0)
            let approval = try #require((result["approvals"] as? [[String: Any]])?.first)
            let approvalID = try #require(approval["id"] as? String)
            #expect(approval["status"] as? String == "pending")
            let requested = try #require(parseDate(approval["requested_at"] as? String))
            let expires = try #require(parseDate(approval["expires_at"] as? String))
            #expect(abs(expires.timeIntervalSince(requested) - 24 * 3600) < 1)

            // list_approvals shows it
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "cust-2", "reply_to": "test:list"]))
            let list = try h.reply(on: "test:list")
            let listed = try #require(list["result"] as? [String: Any])
            #expect(listed["count"] as? Int == 1)
            #expect(((listed["approvals"] as? [[String: Any]])?.first?["id"] as? String) == approvalID)

            try h.push("approve \(approvalID) ops@example.com", to: "coord:approvals")
            var planID = ""
            try h.wait("plan.created") {
                planID = try h.events().first { $0["type"] as? String == "plan.created" }?["plan_id"] as? String ?? ""
                return !planID.isEmpty
            }
            let plan = try h.waitForPlan(planID, status: "completed")
            let steps = try #require(plan["steps"] as? [[String: Any]])
            #expect(steps.map { $0["action"] as? String } == ["migrate_database"])
            let types = try h.events().compactMap { $0["type"] as? String }
            #expect(types.contains("approval.approved"))
            #expect(types.contains("plan.completed"))
            // approved approvals leave the pending list
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "cust-2", "reply_to": "test:list"]))
            #expect(((try h.reply(on: "test:list"))["result"] as? [String: Any])?["count"] as? Int == 0)
        }

        @Test("get_plan, get_approval, execute_plan and their not_found / conflict_state errors")
        func requestKinds() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("k1", executeNow: false, [
                Wire.recommendation("low-1", resources: ["i-1"]),
                Wire.recommendation("high-1", risk: "high", resources: ["i-2"]),
            ]))
            let result = try #require((try h.reply(on: "test:replies"))["result"] as? [String: Any])
            let plan = try #require((result["execution_plans"] as? [[String: Any]])?.first)
            let planID = try #require(plan["id"] as? String)
            let approvalID = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)

            try h.push(Wire.json(["kind": "get_plan", "plan_id": planID, "reply_to": "test:r"]))
            let got = try h.reply(on: "test:r")
            #expect((got["result"] as? [String: Any])?["status"] as? String == "pending")

            try h.push(Wire.json(["kind": "get_approval", "approval_id": approvalID, "reply_to": "test:r"]))
            #expect(((try h.reply(on: "test:r"))["result"] as? [String: Any])?["risk_level"] as? String == "high")

            try h.push(Wire.json(["kind": "execute_plan", "plan_id": planID, "reply_to": "test:r", "request_id": "x1"]))
            let started = try h.reply(on: "test:r")
            #expect(started["ok"] as? Bool == true)
            _ = try h.waitForPlan(planID, status: "completed")

            try h.push(Wire.json(["kind": "execute_plan", "plan_id": planID, "reply_to": "test:r"]))
            let again = try h.reply(on: "test:r")
            #expect(again["ok"] as? Bool == false)
            #expect((again["error"] as? [String: Any])?["code"] as? String == "conflict_state")

            for (kind, field) in [("get_plan", "plan_id"), ("get_approval", "approval_id"), ("execute_plan", "plan_id")] {
                try h.push(Wire.json(["kind": kind, field: "nope", "reply_to": "test:r"]))
                let missing = try h.reply(on: "test:r")
                #expect((missing["error"] as? [String: Any])?["code"] as? String == "not_found", "\(kind)")
                #expect(((missing["error"] as? [String: Any])?["message"] as? String)?.contains(field) == true)
            }
        }

        @Test("bad input: clear error replies, dead letters with the raw bytes, and the daemon goes on")
        func badInput() throws {
            let h = try Harness()
            try h.startDaemon { $0.maxMessageBytes = 4096; $0.maxRecommendations = 3 }
            let cases: [(String, String)] = [
                ("{not json", "invalid_json"),
                ("[1,2,3]", "invalid_request"),  // valid JSON of the wrong shape (section 2.4)
                (#"{"kind":"teleport","reply_to":"test:bad"}"#, "invalid_request"),
                (#"{"request_id":5,"reply_to":"test:bad"}"#, "invalid_request"),
                (Wire.coordinate("b1", replyTo: "test:bad", [Wire.recommendation("r1", risk: "extreme")]), "invalid_request"),
                (Wire.coordinate("b2", replyTo: "test:bad", (1...4).map { Wire.recommendation("r\($0)") }), "too_large"),
                (#"{"reply_to":"test:bad","pad":""# + String(repeating: "x", count: 5000) + #""}"#, "too_large"),
                (#"{"kind":"get_plan","reply_to":"test:bad"}"#, "invalid_request"),
            ]
            for (message, _) in cases { try h.push(message) }
            try h.push(bytes: [0xFF, 0xFE, 0x00, 0x41])
            try h.push(Wire.coordinate("after-bad", replyTo: "test:good", [Wire.recommendation("ok-1")]))
            let good = try h.reply(on: "test:good")
            #expect(good["ok"] as? Bool == true)

            // Several intake loops share the queue, so replies and dead letters come in any order.
            let answered = cases.filter { $0.0.contains("test:bad") }
            var codes: [String] = []
            var byRequest: [String: String] = [:]
            for _ in answered {
                let reply = try h.reply(on: "test:bad")
                let error = try #require(reply["error"] as? [String: Any])
                let code = try #require(error["code"] as? String)
                codes.append(code)
                if let id = reply["request_id"] as? String { byRequest[id] = code }
                #expect((error["message"] as? String)?.isEmpty == false)
            }
            #expect(codes.sorted() == answered.map(\.1).sorted())
            #expect(byRequest["b1"] == "invalid_request")
            #expect(byRequest["b2"] == "too_large")
            let dead = try h.deadLetters()
            #expect(dead.count == cases.count + 1)
            // Each dead letter says why, with the code its reply has (or would have had).
            for (message, expected) in cases {
                let letter = dead.first { $0["raw"] as? String == message }
                #expect(letter.flatMap(Harness.code) == expected, "\(message.prefix(60))")
            }
            #expect(dead.allSatisfy { $0["queue"] as? String == "coord:requests" && $0["at"] != nil })
            #expect(dead.contains { $0["raw"] as? String == "{not json" })
            #expect(dead.contains { $0["raw"] as? String == "[1,2,3]" })
            let binary = try #require(dead.first { $0["raw_base64"] != nil })
            #expect(binary["raw_base64"] as? String == Data([0xFF, 0xFE, 0x00, 0x41]).base64EncodedString())
            #expect(binary["raw"] == nil)
            #expect(Harness.code(binary) == "invalid_json")
            let risk = try #require(dead.first { ($0["raw"] as? String)?.contains("extreme") == true })
            #expect(((risk["error"] as? [String: Any])?["message"] as? String)?.contains("recommendations[0].risk_level") == true)
            #expect(try h.length("coord:requests") == 0)
        }

        @Test("the same request_id twice has one effect and the first reply twice")
        func idempotency() throws {
            let h = try Harness()
            try h.startDaemon()
            let message = Wire.coordinate("same-id", [Wire.recommendation("r1", risk: "medium", resources: ["i-9"])])
            try h.push(message)
            let first = try h.reply(on: "test:replies")
            try h.push(message)
            let second = try h.reply(on: "test:replies")
            #expect(Wire.json(first) == Wire.json(second))
            let completed = try h.events().filter { $0["type"] as? String == "coordination.completed" }
            #expect(completed.count == 1)
            #expect(try h.zcard(h.keys.pendingApprovals) == 1)
        }

        @Test("a recommendation conflicting with an active one from an earlier request is discarded")
        func crossRequestConflicts() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("a", [Wire.recommendation("first", risk: "medium", resources: ["i-1"], priority: 1)]))
            _ = try h.reply(on: "test:replies")
            try h.push(Wire.coordinate("b", [Wire.recommendation("second", resources: ["i-1"], priority: 9)]))
            let result = try #require((try h.reply(on: "test:replies"))["result"] as? [String: Any])
            let discarded = try #require((result["discarded"] as? [[String: Any]])?.first)
            #expect(discarded["id"] as? String == "second")
            #expect(discarded["reason"] as? String == "conflicts_with_active")
            #expect(discarded["active_id"] as? String == "first")
            #expect(result["conflicts_detected"] as? Int == 1)
        }

        @Test("events reach Pub/Sub subscribers as well as the stream")
        func pubSub() throws {
            let h = try Harness()
            let subscriber = try RedisSubscriber(configuration: h.server.configuration)
            defer { subscriber.close() }
            try subscriber.subscribe(["coord:events"])
            try h.startDaemon()
            try h.push(Wire.coordinate("ps", [Wire.recommendation("r1")]))
            var types: [String] = []
            while let message = try subscriber.next(timeout: 5) {
                let event = try Harness.object(message.payload)
                types.append(event["type"] as? String ?? "")
                if types.last == "coordination.completed" { break }
            }
            #expect(types.contains("plan.created"))
            #expect(types.last == "coordination.completed")
        }
    }
}

func parseDate(_ text: String?) -> Date? {
    guard let text else { return nil }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}
