import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Rules of PROTOCOL.md sections 2–4 and 7 that the scenario tests do not reach, one test each.
    @Suite("PROTOCOL.md rules, one by one", .sharesMachine)
    struct ProtocolRulesTests {
        func result(_ reply: [String: Any]) throws -> [String: Any] {
            try #require(reply["result"] as? [String: Any], "\(reply)")
        }

        // MARK: 2.1 Envelope

        @Test("§2.1 a message without kind is a coordinate; a missing request_id is generated, each different")
        func defaultsOfTheEnvelope() throws {
            let h = try Harness()
            try h.startDaemon()
            let recommendation = Wire.recommendation("r1", resources: ["i-1"])
            try h.push(Wire.json(["customer_id": "env-1", "reply_to": "test:env", "recommendations": [recommendation]]))
            try h.push(Wire.json(["customer_id": "env-2", "reply_to": "test:env", "recommendations": [recommendation]]))
            let replies = try h.collectReplies(on: "test:env", count: 2)
            #expect(replies.count == 2)
            #expect(replies.allSatisfy { $0["kind"] as? String == "coordinate" && $0["ok"] as? Bool == true })
            let ids = replies.compactMap { $0["request_id"] as? String }
            #expect(ids.count == 2)
            #expect(ids.allSatisfy { !$0.isEmpty })
            #expect(Set(ids).count == 2)
        }

        @Test("§2.1 no reply_to, no reply: the request takes effect and nothing is written outside the prefix")
        func noReplyTo() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("silent", customer: "silent", replyTo: nil, [Wire.recommendation("r1", resources: ["i-1"])]))
            try h.push(Wire.coordinate("marker", customer: "marker", replyTo: "test:marker", [Wire.recommendation("r1")]))
            _ = try h.reply(on: "test:marker")
            try h.waitForEvent("silent's coordination.completed") {
                $0["type"] as? String == "coordination.completed" && $0["customer_id"] as? String == "silent"
            }
            #expect(try h.hlen(h.keys.active(customer: "silent")) == 1)
            let outside = try h.scanKeys("*").filter { !$0.hasPrefix("\(h.keys.prefix):") }
            #expect(outside.isEmpty, "\(outside)")
        }

        @Test("§2.1 the reply list gets --reply-ttl")
        func replyTTL() throws {
            let h = try Harness()
            try h.startDaemon { $0.replyTTL = 120 }
            try h.push(Wire.coordinate("ttl", replyTo: "test:ttl", [Wire.recommendation("r1")]))
            try h.wait("the reply") { try h.length("test:ttl") == 1 }
            let ttl = try #require(try h.redis.send("TTL", "test:ttl").integer)
            #expect(ttl > 0 && ttl <= 120, "TTL \(ttl)")
        }

        // MARK: 2.2 Kinds

        @Test("§2.2 coordinate's result: execution_order respects dependencies; conflicts_resolved; created_at")
        func coordinateResultFields() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("fields", customer: "fields", [
                Wire.recommendation("c", resources: ["i-3"], dependencies: ["b"], priority: 9),
                Wire.recommendation("b", resources: ["i-2"], dependencies: ["a"], priority: 8),
                Wire.recommendation("a", resources: ["i-1"], priority: 1),
                Wire.recommendation("loser", resources: ["i-1"], priority: 0),
            ]))
            let r = try result(try h.reply(on: "test:replies"))
            #expect(r["execution_order"] as? [String] == ["a", "b", "c"])
            #expect(r["conflicts_detected"] as? Int == 1)
            #expect(r["conflicts_resolved"] as? Int == 1)
            let created = try #require(parseDate(r["created_at"] as? String), "created_at: \(r["created_at"] ?? "nil")")
            let event = try h.waitForEvent("coordination.completed") { $0["type"] as? String == "coordination.completed" }
            let at = try #require(parseDate(event["at"] as? String))
            #expect(abs(at.timeIntervalSince(created)) < 60, "created_at is the time of the request, not a constant")
        }

        @Test("§2.2 list_approvals leaves out expired approvals and other customers' approvals")
        func listApprovals() throws {
            let h = try Harness()
            try h.startDaemon { $0.policy.expiry[.high] = 1 }
            func approvalID(_ request: String, customer: String, risk: String) throws -> String {
                try h.push(Wire.coordinate(request, customer: customer, replyTo: "test:a",
                                           [Wire.recommendation(request, risk: risk, resources: [request])]))
                let r = try result(try h.reply(on: "test:a"))
                return try #require((r["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            }
            let expiring = try approvalID("soon", customer: "mine", risk: "high")
            let kept = try approvalID("later", customer: "mine", risk: "medium")
            _ = try approvalID("theirs", customer: "other", risk: "medium")
            try h.waitForEvent("approval.expired") { $0["type"] as? String == "approval.expired" && $0["approval_id"] as? String == expiring }
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "mine", "reply_to": "test:list"]))
            let listed = try result(try h.reply(on: "test:list"))
            #expect(listed["count"] as? Int == 1)
            #expect((listed["approvals"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [kept])

            // Left out by the read itself, not only once the sweeper has expired it: an approval
            // past its expiry in the customer's index that the sweeper has not reached (planted
            // outside the index it sweeps) is not listed.
            let stored = try #require(try h.redis.send("GET", h.keys.approval(kept)).bytes)
            _ = try h.redis.send("SET", h.keys.approval("ap-planted"), stored)
            _ = try h.redis.send("ZADD", h.keys.pendingApprovals(customer: "mine"), 1, "ap-planted")
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "mine", "reply_to": "test:list"]))
            #expect(try result(try h.reply(on: "test:list"))["count"] as? Int == 1)
        }

        // MARK: 3 Approval decisions

        @Test("§3 a plain-text reject, reason and all, ends the approval and the recommendation")
        func plainTextReject() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("pt", customer: "pt", [Wire.recommendation("risky", risk: "high", resources: ["db-1"])]))
            let approvalID = try #require((try result(try h.reply(on: "test:replies"))["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(try h.hlen(h.keys.active(customer: "pt")) == 1)
            try h.push("reject \(approvalID) alice@example.com not during the freeze", to: h.keys.approvals)
            let event = try h.waitForEvent("approval.rejected") { $0["type"] as? String == "approval.rejected" }
            #expect(event["approval_id"] as? String == approvalID)
            let stored = try Harness.object(try #require(try h.redis.send("GET", h.keys.approval(approvalID)).bytes))
            #expect(stored["status"] as? String == "rejected")
            #expect(stored["rejection_reason"] as? String == "not during the freeze" || stored["reason"] as? String == "not during the freeze",
                    "\(stored)")
            #expect(try h.hlen(h.keys.active(customer: "pt")) == 0)
            #expect(try h.zcard(h.keys.pendingApprovals) == 0)
        }

        @Test("§3 --critical-approvers 3: two votes leave it pending, the third approves")
        func threeCriticalApprovers() throws {
            let h = try Harness()
            _ = try h.launch(["run", "--sim-speed", "0", "--critical-approvers", "3"])
            try h.push(Wire.coordinate("crit", customer: "crit", [Wire.recommendation("crit", risk: "critical", resources: ["db"])]))
            let approvalID = try #require((try result(try h.reply(on: "test:replies", timeout: 30))["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            for (n, user) in ["alice", "bob", "carol"].enumerated() {
                try h.push(Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": user, "reply_to": "test:d"]), to: h.keys.approvals)
                let status = (try result(try h.reply(on: "test:d")))["status"] as? String
                #expect(status == (n < 2 ? "pending" : "approved"), "after \(user)")
            }
            let partial = try h.events().filter { $0["type"] as? String == "approval.partially_approved" }
            #expect(partial.count == 2)
        }

        @Test("§3 a plan created by an approval of a request without execute_now waits for execute_plan")
        func approvedPlanWaits() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("wait", customer: "wait", executeNow: false,
                                       [Wire.recommendation("w", action: "migrate_to_spot", risk: "high", resources: ["i-1"])]))
            let approvalID = try #require((try result(try h.reply(on: "test:replies"))["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            try h.push(Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": "alice", "reply_to": "test:d"]), to: h.keys.approvals)
            let planID = try #require((try result(try h.reply(on: "test:d")))["plan_id"] as? String)
            // Another request, answered after the approval, proves the daemon had time to start it.
            try h.push(Wire.coordinate("later", customer: "later", replyTo: "test:later", executeNow: true,
                                       [Wire.recommendation("x", action: "migrate_to_spot", resources: ["i-9"])]))
            let laterPlan = try #require((try result(try h.reply(on: "test:later"))["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            _ = try h.waitForPlan(laterPlan, status: "completed")
            #expect(try h.plan(planID)?["status"] as? String == "pending")
            #expect(try !h.events(plan: planID).contains { $0["type"] as? String == "plan.started" })
            try h.push(Wire.json(["kind": "execute_plan", "plan_id": planID, "reply_to": "test:x"]))
            #expect((try h.reply(on: "test:x"))["ok"] as? Bool == true)
            _ = try h.waitForPlan(planID, status: "completed")
        }

        // MARK: 4 Events

        @Test("§4 every event has event_id (unique), at, customer_id; discards emit recommendation.discarded")
        func eventEnvelope() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(fixture("scenario1-conflict"))
            _ = try h.reply(on: "test:replies:scenario-1")
            try h.waitForEvent("coordination.completed") { $0["type"] as? String == "coordination.completed" }
            let events = try h.events()
            #expect(events.count >= 4)
            for event in events {
                #expect((event["event_id"] as? String)?.isEmpty == false, "\(event)")
                #expect(parseDate(event["at"] as? String) != nil, "\(event)")
                #expect((event["customer_id"] as? String)?.isEmpty == false, "\(event)")
            }
            #expect(Set(events.compactMap { $0["event_id"] as? String }).count == events.count)
            let customer = try #require(events.first?["customer_id"] as? String)
            #expect(events.allSatisfy { $0["customer_id"] as? String == customer })
            let discarded = try #require(events.first { $0["type"] as? String == "recommendation.discarded" })
            #expect(discarded["recommendation_id"] as? String == "rec-resource-scale")
        }

        @Test("§4 the event stream is capped (MAXLEN ~)")
        func streamCap() throws {
            // Small stream nodes, so that the approximate trim can act at about the cap.
            let h = try Harness(redisArguments: ["--stream-node-max-entries", "10"])
            try h.startDaemon { $0.eventStreamMaxLength = 50 }
            for n in 0..<150 {
                try h.push(Wire.coordinate("cap-\(n)", customer: "cap-\(n)", replyTo: "test:cap", [Wire.recommendation("r")]))
            }
            #expect(try h.collectReplies(on: "test:cap", count: 150).count == 150)
            let length = try #require(try h.redis.send("XLEN", h.keys.eventStream).integer)
            #expect(length > 0)
            #expect(length <= 60, "XLEN \(length) with MAXLEN ~ 50 after at least 300 events")
        }

        @Test("§4 --medium-policy notify: approved at once, approval.approved with data.policy = notify")
        func mediumNotify() throws {
            let h = try Harness()
            try h.startDaemon { $0.policy.mediumPolicy = .notify }
            try h.push(Wire.coordinate("notify", customer: "notify", executeNow: true,
                                       [Wire.recommendation("m", action: "migrate_to_spot", risk: "medium", resources: ["i-1"])]))
            let r = try result(try h.reply(on: "test:replies"))
            #expect(r["approvals_required"] as? Int == 0)
            let planID = try #require((r["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            let event = try h.waitForEvent("approval.approved") { $0["type"] as? String == "approval.approved" }
            #expect((event["data"] as? [String: Any])?["policy"] as? String == "notify")
            #expect(event["recommendation_id"] as? String == "m")
            _ = try h.waitForPlan(planID, status: "completed")
            #expect(try h.zcard(h.keys.pendingApprovals) == 0)
        }

        // MARK: 7 Operations

        @Test("§7 the heartbeat: host, pid, started_at, version, with a TTL")
        func heartbeat() throws {
            let h = try Harness()
            let process = try h.launch(["run", "--sim-speed", "0", "--heartbeat-ttl", "7"])
            try h.wait("a heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            let key = try #require(try h.scanKeys(h.keys.worker("*")).first)
            let fields = try h.redis.send("HGETALL", key).array?.compactMap(\.string) ?? []
            var hash: [String: String] = [:]
            for pair in stride(from: 0, to: fields.count - 1, by: 2) { hash[fields[pair]] = fields[pair + 1] }
            #expect(hash["pid"] == String(process.processIdentifier))
            #expect(hash["host"] == ProcessInfo.processInfo.hostName)
            #expect(parseDate(hash["started_at"]) != nil, "\(hash)")
            #expect(hash["version"]?.isEmpty == false)
            let ttl = try #require(try h.redis.send("PTTL", key).integer)
            #expect(ttl > 0 && ttl <= 7000, "PTTL \(ttl)")
        }

        @Test("§7 SIGINT: a clean stop, exit 0, no heartbeat left")
        func sigint() throws {
            let h = try Harness()
            let process = try h.launch(["run", "--sim-speed", "0"])
            try h.push(Wire.coordinate("int", replyTo: "test:int", [Wire.recommendation("r")]))
            _ = try h.reply(on: "test:int", timeout: 30)
            #expect(try !h.scanKeys(h.keys.worker("*")).isEmpty)
            kill(process.processIdentifier, SIGINT)
            #expect(ChildProcess.waitForExit(process, timeout: 30))
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 0)
            #expect(try h.scanKeys(h.keys.worker("*")).isEmpty)
            #expect(try h.inflightCount() == 0)
        }

        @Test("§7 a unix socket URL")
        func unixSocket() throws {
            let h = try Harness(unixSocket: true)
            let path = try #require(h.server.unixSocketPath)
            _ = try h.launch(["run", "--sim-speed", "0"], environment: ["REDIS_URL": "unix://\(path)"])
            try h.push(Wire.coordinate("unix", replyTo: "test:unix", [Wire.recommendation("r")]))
            #expect((try h.reply(on: "test:unix", timeout: 30))["ok"] as? Bool == true)
            let clients = try h.redis.send("CLIENT", "LIST").string ?? ""
            #expect(clients.contains("addr=/") || clients.contains("unix"), "a client over the socket")
        }

        @Test("§7 after a Redis restart the approval loop and the executor go on, not only request intake")
        func loopsReconnect() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            try h.push(Wire.coordinate("before", customer: "rc", executeNow: true,
                                       [Wire.recommendation("high", agent: "rc-agent", action: "migrate_to_spot", risk: "high", resources: ["i-1"]),
                                        Wire.recommendation("low", agent: "rc-agent", action: "resize", resources: ["i-2"])]))
            let r = try result(try h.reply(on: "test:replies"))
            let approvalID = try #require((r["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            let step = try h.reply(on: h.keys.agentSteps("rc-agent"))
            try h.server.restart()
            // Executor: the result of a step dispatched before the restart.
            var answer: [String: Any] = ["plan_id": step["plan_id"] ?? "", "step_id": step["step_id"] ?? "", "ok": true,
                                         "result": [:] as [String: Any], "rollback": false]
            if let attempt = step["attempt"] { answer["attempt"] = attempt }
            try h.push(Wire.json(answer), to: h.keys.stepResults)
            _ = try h.waitForPlan(try #require(step["plan_id"] as? String), status: "completed", timeout: 40)
            // Approvals: a decision after the restart.
            try h.push(Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": "alice", "reply_to": "test:d"]), to: h.keys.approvals)
            let decided = try h.reply(on: "test:d", timeout: 40)
            #expect((decided["result"] as? [String: Any])?["status"] as? String == "approved")
        }
    }
}
