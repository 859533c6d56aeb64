import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// Attacks on signatures (PROTOCOL.md section 10) against a real redis-server
    /// and the daemon: replayed bytes, replies to what nobody verified, replies outside the
    /// signer's namespace, signatures out of their time window, principal ids with `:`.
    @Suite("Trust v3: signing time, replays, unverified messages, reply namespaces", .sharesMachine)
    struct TrustReplayTests {
        func start(_ h: Harness, _ fixture: TrustFixture, replyPrefix: String? = nil) throws {
            try h.startDaemon {
                $0.trustFile = fixture.path
                $0.executor = .agents
                $0.stepTimeout = 120
                $0.replyPrefix = replyPrefix
            }
        }

        func code(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }
        func message(_ reply: [String: Any]) -> String { (reply["error"] as? [String: Any])?["message"] as? String ?? "" }

        func planCreatedCount(_ h: Harness) throws -> Int {
            try h.events().count { $0["type"] as? String == "plan.created" }
        }

        /// A `coordinate` without `request_id`: nothing but its signature tells two copies apart.
        func executeNow(_ id: String, replyTo: String, agent: String = "cost-agent-1", resource: String) -> String {
            Wire.json(["kind": "coordinate", "customer_id": "cust-1", "execute_now": true, "reply_to": replyTo,
                       "recommendations": [Wire.recommendation(id, agent: agent, action: "scale_up", resources: [resource])]])
        }

        @Test("attack 9 as filed: the first plan ran to completion, the same signed execute_now bytes pushed again make no second plan")
        func replayAfterCompletion() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try h.startDaemon { $0.trustFile = fixture.path }  // simulated steps, instant
            let signed = try fixture.sign(executeNow("done-1", replyTo: "test:done", resource: "i-done"), as: "cost-agent-1")
            try h.push(signed)
            let first = try h.reply(on: "test:done")
            let planID = try #require(((first["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]])?.first?["id"] as? String, "\(first)")
            _ = try h.waitForPlan(planID, status: "completed")
            try h.push(signed)
            let second = try h.reply(on: "test:done")
            #expect(NSDictionary(dictionary: second) == NSDictionary(dictionary: first), "the replay is answered with the first reply: \(second)")
            // Nothing queued or in flight after a signed marker: the replay can still make nothing.
            try h.settle { try fixture.sign($0, as: "cost-agent-1") }
            #expect(try planCreatedCount(h) == 1, "the replay made a plan")
            #expect(try h.events().count { $0["type"] as? String == "plan.completed" } == 1)
        }

        @Test("attack 9: the same signed execute_now bytes (no request_id) pushed twice make one plan; the copy is answered with the first reply")
        func replayedExecuteNow() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)

            // One after the other, as in the issue.
            let signed = try fixture.sign(executeNow("up-1", replyTo: "test:replay", resource: "i-1"), as: "cost-agent-1")
            try h.push(signed)
            let first = try h.reply(on: "test:replay")
            #expect(first["ok"] as? Bool == true, "\(first)")
            try h.wait("the first plan's step on the agent's list") { try h.length("coord:agent:cost-agent-1:steps") == 1 }
            try h.push(signed)
            let second = try h.reply(on: "test:replay")
            #expect(NSDictionary(dictionary: second) == NSDictionary(dictionary: first), "the replay is answered with the first reply: \(second)")

            // Both copies in one LPUSH: they land in one batch.
            let twice = try fixture.sign(executeNow("up-2", replyTo: "test:replay-2", resource: "i-2"), as: "cost-agent-1")
            _ = try h.redis.send("LPUSH", "coord:requests", twice, twice)
            let a = try h.reply(on: "test:replay-2")
            let b = try h.reply(on: "test:replay-2")
            #expect(a["ok"] as? Bool == true, "\(a)")
            #expect(NSDictionary(dictionary: a) == NSDictionary(dictionary: b))

            // With a request_id, the replay is answered from the request's stored reply.
            let withID = try fixture.sign(Wire.coordinate("with-id", replyTo: "test:replay-3", executeNow: true,
                                                          [Wire.recommendation("up-3", agent: "cost-agent-1", resources: ["i-3"])]), as: "cost-agent-1")
            try h.push(withID)
            let c = try h.reply(on: "test:replay-3")
            #expect(c["ok"] as? Bool == true, "\(c)")
            try h.push(withID)
            #expect(NSDictionary(dictionary: try h.reply(on: "test:replay-3")) == NSDictionary(dictionary: c))

            // Nothing queued or in flight after a signed marker: no copy can still make a plan.
            try h.settle { try fixture.sign($0, as: "cost-agent-1") }
            #expect(try planCreatedCount(h) == 3, "one plan per distinct message")
            // Each plan's first step is sent by the executor, after the request's commit: waited
            // for. No fourth can follow: it would need a fourth plan.
            try h.wait("the three plans' steps sent") { try h.length("coord:agent:cost-agent-1:steps") >= 3 }
            #expect(try h.length("coord:agent:cost-agent-1:steps") == 3)
            #expect(try h.hlen(h.keys.active(customer: "cust-1")) == 3)
            #expect(try h.deadLetters().isEmpty, "a replay is a duplicate, not a dead letter")
        }

        @Test("two daemons taking copies of the same signed bytes at once: exactly one has effects, every copy gets the first reply")
        func replayRace() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            try start(h, fixture)
            let signed = try fixture.sign(executeNow("race-1", replyTo: "test:race", resource: "i-race"), as: "cost-agent-1")
            _ = try h.redis.send(RedisCommand("LPUSH", arguments: ["coord:requests"] + Array(repeating: signed, count: 12)))
            let replies = try h.collectReplies(on: "test:race", count: 12) { try fixture.sign($0, as: "cost-agent-1") }
            #expect(replies.count == 12)
            #expect(Set(replies.map { NSDictionary(dictionary: $0) }).count == 1, "every copy answered with the one reply")
            #expect(replies.first?["ok"] as? Bool == true)
            // Settled by the signed marker: every copy has been committed, none can still make a plan.
            #expect(try planCreatedCount(h) == 1)
            #expect(try h.hlen(h.keys.active(customer: "cust-1")) == 1)
        }

        @Test("a replayed execute_plan or decision changes nothing and is answered already_processed; a replayed step result changes nothing")
        func replayedOtherKinds() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            // A pending plan (no execute_now) and a pending approval.
            let request = Wire.coordinate("other-kinds", replyTo: "test:coord", [
                Wire.recommendation("low-1", agent: "cost-agent-1", action: "scale_up", resources: ["i-1"]),
                Wire.recommendation("high-1", agent: "cost-agent-1", action: "migrate_database", risk: "high", resources: ["db-1"]),
            ])
            try h.push(try fixture.sign(request, as: "cost-agent-1"))
            let result = try #require(try h.reply(on: "test:coord")["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            let approvalID = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)

            let execute = try fixture.sign(Wire.json(["kind": "execute_plan", "plan_id": planID, "reply_to": "test:exec"]), as: "alice@example.com")
            try h.push(execute)
            #expect(try h.reply(on: "test:exec")["ok"] as? Bool == true)
            try h.push(execute)
            let again = try h.reply(on: "test:exec")
            #expect(code(again) == "already_processed", "\(again)")

            let reject = try fixture.sign(Wire.json(["approval_id": approvalID, "decision": "reject", "user_id": "alice@example.com",
                                                     "reason": "no", "reply_to": "test:decide"]), as: "alice@example.com")
            try h.push(reject, to: "coord:approvals")
            #expect((try h.reply(on: "test:decide")["result"] as? [String: Any])?["status"] as? String == "rejected")
            // Approval events only: the plan started above keeps adding its own meanwhile.
            func approvalEvents() throws -> Int {
                try h.events().filter { ($0["type"] as? String)?.hasPrefix("approval.") == true }.count
            }
            let eventsAfterReject = try approvalEvents()
            try h.push(reject, to: "coord:approvals")
            #expect(code(try h.reply(on: "test:decide")) == "already_processed")
            #expect(try approvalEvents() == eventsAfterReject)

            // The plan's step, answered; the same answer again changes nothing.
            guard let (_, stepBytes) = try h.redis.blockingPopRight("coord:agent:cost-agent-1:steps", timeout: 15) else {
                Issue.record("no step dispatched")
                return
            }
            let step = try Harness.object(stepBytes)
            var answer: [String: Any] = ["plan_id": planID, "step_id": step["step_id"]!, "ok": true, "result": [:], "rollback_data": [:]]
            for field in ["attempt", "rollback"] { if let value = step[field] { answer[field] = value } }
            let signedResult = try fixture.sign(Wire.json(answer), as: "cost-agent-1")
            try h.push(signedResult, to: "coord:steps:results")
            try h.wait("the next step or the plan's end") {
                try h.length("coord:agent:cost-agent-1:steps") == 1 || (try h.plan(planID)?["status"] as? String) == "completed"
            }
            let plan = try #require(try h.redis.send("GET", h.keys.plan(planID)).bytes)
            let events = try h.events().count
            try h.push(signedResult, to: "coord:steps:results")
            try h.stepResultsHandled(plans: [planID])
            #expect(try h.redis.send("GET", h.keys.plan(planID)).bytes == plan)
            #expect(try h.events().count == events)
        }

        @Test("an unsigned message, one whose signature does not verify and one of an unknown kid get no reply; they are dead-lettered forbidden")
        func unverifiedGetsNoReply() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            let before = try h.events().count
            func request(_ id: String) -> String {
                Wire.coordinate(id, replyTo: "test:unverified", [Wire.recommendation("r-\(id)", agent: "cost-agent-1", resources: ["i-\(id)"])])
            }
            try h.push(request("unsigned"))
            try h.push(try TrustFixture.sign(request("forged"), kid: "cost-agent-1", key: Curve25519.Signing.PrivateKey(),
                                             issuedAt: Int(Date().timeIntervalSince1970)))
            try h.push(try TrustFixture.sign(request("stranger"), kid: "mallory", key: Curve25519.Signing.PrivateKey(),
                                             issuedAt: Int(Date().timeIntervalSince1970)))
            let decision = Wire.json(["approval_id": "a-1", "decision": "approve", "user_id": "alice@example.com", "reply_to": "test:unverified"])
            try h.push(decision, to: "coord:approvals")
            try h.push(try TrustFixture.sign(decision, kid: "alice@example.com", key: Curve25519.Signing.PrivateKey(),
                                             issuedAt: Int(Date().timeIntervalSince1970)), to: "coord:approvals")
            let letters = try h.deadLettersEventually(count: 5)
            #expect(letters.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" }, "\(letters)")

            // A verified message to the same list is the first thing on it.
            try h.push(try fixture.sign(request("verified"), as: "cost-agent-1"))
            let reply = try h.reply(on: "test:unverified")
            #expect(reply["request_id"] as? String == "verified", "\(reply)")
            #expect(try h.length("test:unverified") == 0)
            #expect(try h.events().count > before)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-1"), "r-unsigned").integer == 0)
        }

        @Test("with --reply-prefix P a signed message whose reply_to is outside P<kid>: is refused into coord:dead, unanswered")
        func replyToOutsideNamespace() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture, replyPrefix: "replies:")
            let foreign = "replies:alice@example.com:inbox"
            let request = Wire.coordinate("outside", replyTo: foreign, [Wire.recommendation("out-1", agent: "cost-agent-1", resources: ["i-1"])])
            try h.push(try fixture.sign(request, as: "cost-agent-1"))
            // A prefix of the kid is not the kid's namespace.
            let sibling = Wire.coordinate("sibling", replyTo: "replies:cost-agent-10:x",
                                          [Wire.recommendation("out-2", agent: "cost-agent-1", resources: ["i-2"])])
            try h.push(try fixture.sign(sibling, as: "cost-agent-1"))
            let decision = Wire.json(["approval_id": "a-1", "decision": "approve", "user_id": "alice@example.com", "reply_to": "replies:cost-agent-1:x"])
            try h.push(try fixture.sign(decision, as: "alice@example.com"), to: "coord:approvals")
            let letters = try h.deadLettersEventually(count: 3)
            #expect(letters.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" }, "\(letters)")

            // Its own namespace is answered.
            let own = Wire.coordinate("own", replyTo: "replies:cost-agent-1:r1", [Wire.recommendation("own-1", agent: "cost-agent-1", resources: ["i-3"])])
            try h.push(try fixture.sign(own, as: "cost-agent-1"))
            #expect(try h.reply(on: "replies:cost-agent-1:r1")["ok"] as? Bool == true)
            #expect(try h.length(foreign) == 0)
            #expect(try h.length("replies:cost-agent-10:x") == 0)
            #expect(try h.length("replies:cost-agent-1:x") == 0)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-1"), "out-1").integer == 0)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-1"), "out-2").integer == 0)
        }

        @Test("a signature without iat, more than --signature-max-age old or more than 60 s ahead is refused forbidden, signature expired")
        func expiredSignature() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            let now = Int(Date().timeIntervalSince1970)
            func request(_ id: String) -> String {
                Wire.coordinate(id, replyTo: "test:time", [Wire.recommendation("t-\(id)", agent: "cost-agent-1", resources: ["i-\(id)"])])
            }
            try h.push(try fixture.sign(request("old"), as: "cost-agent-1", issuedAt: now - 1000))
            try h.push(try fixture.sign(request("ahead"), as: "cost-agent-1", issuedAt: now + 600))
            try h.push(try fixture.sign(request("none"), as: "cost-agent-1", withoutIssuedAt: true))
            var answers: [String: [String: Any]] = [:]
            for _ in 0..<3 {
                let reply = try h.reply(on: "test:time")
                answers[reply["request_id"] as? String ?? "?"] = reply
            }
            for id in ["old", "ahead", "none"] {
                let reply = try #require(answers[id], "no answer to \(id): \(answers)")
                #expect(code(reply) == "forbidden", "\(id): \(reply)")
                #expect(message(reply).contains("signature expired"), "\(id): \(reply)")
                #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-1"), "t-\(id)").integer == 0)
            }
            #expect(try h.deadLettersEventually(count: 3).count == 3)

            // Within the window (a little in the past, a little ahead): accepted.
            try h.push(try fixture.sign(request("recent"), as: "cost-agent-1", issuedAt: now - 200))
            #expect(try h.reply(on: "test:time")["ok"] as? Bool == true)
            try h.push(try fixture.sign(request("soon"), as: "cost-agent-1", issuedAt: now + 30))
            #expect(try h.reply(on: "test:time")["ok"] as? Bool == true)
        }

        @Test("examples/python/signed_agent.py signs with iat: its JWS is accepted, and a second push of it is a replay")
        func pythonExample() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            let keyPath = fixture.directory.appendingPathComponent("cost-agent-1.key").path
            try Data((fixture.keys["cost-agent-1"]!.rawRepresentation.base64EncodedString() + "\n").utf8).write(to: URL(fileURLWithPath: keyPath))
            let script = TrustACLTests.root.appendingPathComponent("examples/python/signed_agent.py").path
            let message = executeNow("py-1", replyTo: "test:python", resource: "i-py")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, "--id", "cost-agent-1", "--key", keyPath, "sign", message]
            let output = Pipe()
            process.standardOutput = output
            let deadline = try ChildProcess.run(process, deadline: 30)
            let printed = output.fileHandleForReading.readDataToEndOfFile()
            try deadline.wait()
            #expect(process.terminationStatus == 0)
            let signed = String(decoding: printed, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let header = try #require(Base64URL.decode(String(signed.prefix { $0 != "." })))
            #expect((try Harness.object(header))["iat"] is Int, "\(String(decoding: header, as: UTF8.self))")
            try h.push(signed)
            let first = try h.reply(on: "test:python")
            #expect(first["ok"] as? Bool == true, "\(first)")
            try h.push(signed)
            #expect(NSDictionary(dictionary: try h.reply(on: "test:python")) == NSDictionary(dictionary: first))
            #expect(try h.hlen(h.keys.active(customer: "cust-1")) == 1)
        }

        @Test("a principal id with ':' is refused when the trust file is read: the built daemon does not start")
        func principalWithColon() throws {
            let h = try Harness()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trust-colon-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let key = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
            let path = directory.appendingPathComponent("trust.json").path
            try Data(#"{"principals":{"cost-agent-1:x":{"public_key":"\#(key)","roles":["agent"]}}}"#.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try Trust.load(path: path)
                Issue.record("a principal id with ':' was accepted")
            } catch {
                #expect("\(error)".contains("principals.cost-agent-1:x"), "\(error)")
            }
            let (status, _) = try h.runToEnd(["run", "--trust", path, "--sim-speed", "0"], timeout: 20)
            #expect(status != 0)
            // keys generate refuses to make a key for such an id.
            let keyPath = directory.appendingPathComponent("colon.key").path
            let (generate, _) = try h.runToEnd(["keys", "generate", "--id", "cost-agent-1:x", "--out", keyPath], timeout: 20)
            #expect(generate == 2)
            #expect(!FileManager.default.fileExists(atPath: keyPath))
            // The characters the contract allows are accepted.
            try Data(#"{"principals":{"Ab9@x.y_z+w-v":{"public_key":"\#(key)","roles":["agent"]}}}"#.utf8).write(to: URL(fileURLWithPath: path))
            #expect(try Trust.load(path: path).principals.count == 1)
        }
    }
}

extension Harness {
    /// The dead letters, once there are at least `count`.
    func deadLettersEventually(count: Int) throws -> [[String: Any]] {
        var letters: [[String: Any]] = []
        try wait("\(count) dead letters") {
            letters = try deadLetters()
            return letters.count >= count
        }
        return letters
    }
}
