import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// PROTOCOL.md section 10 against a real redis-server: forged messages change nothing,
    /// properly signed messages work.
    @Suite("Trust: signed messages over a real Redis", .sharesMachine)
    struct TrustDaemonTests {
        func start(_ h: Harness, _ fixture: TrustFixture, executor: DaemonConfiguration.Executor = .simulated) throws {
            try h.startDaemon {
                $0.trustFile = fixture.path
                $0.executor = executor
                $0.stepTimeout = 120
            }
        }

        func code(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }

        /// Every key that holds state (not heartbeats, in-flight lists, dead letters or test replies)
        /// with its value, to show that refused messages changed none of it.
        func state(_ h: Harness) throws -> [String: [UInt8]] {
            var state: [String: [UInt8]] = [:]
            for key in try h.scanKeys("coord:*") {
                if key == "coord:dead" || key.hasPrefix("coord:workers") || key.hasPrefix("coord:inflight:") || key.hasPrefix("coord:inflight-lists:") { continue }
                // A running plan's lease deadline moves as it is renewed; the plan itself must not.
                if key == "coord:plans:running" || key.hasSuffix(":lease") { continue }
                guard let dump = try h.redis.send("DUMP", key).bytes else { throw HarnessError.malformed("\(key) vanished while read") }
                state[key] = dump
            }
            return state
        }

        func deadLetters(_ h: Harness, queue: String, count: Int) throws -> [[String: Any]] {
            var letters: [[String: Any]] = []
            try h.wait("\(count) dead letters from \(queue)") {
                letters = try h.deadLetters().filter { $0["queue"] as? String == queue }
                return letters.count >= count
            }
            return letters
        }

        func forgedDrop(agent: String = "prod-db-agent", risk: String = "low", id: String) -> String {
            Wire.coordinate(id, customer: "cust-1", replyTo: "test:forged", executeNow: true,
                            [Wire.recommendation("drop-1", agent: agent, action: "drop_database", risk: risk, resources: ["db-1"])])
        }

        @Test("a drop_database declared low with execute_now is refused unless its agent signed it: no state, no step")
        func forgedRequest() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture, executor: .agents)
            let before = try state(h)

            try h.push(forgedDrop(id: "f1"))  // unsigned, as in the issue
            try h.push(try JWS.sign(payload: forgedDrop(id: "f2"), kid: "prod-db-agent", privateKey: Curve25519.Signing.PrivateKey()))
            try h.push(try fixture.sign(forgedDrop(id: "f3"), as: "cost-agent-1"))  // a real agent, claiming another's id
            let genuine = try fixture.sign(forgedDrop(risk: "critical", id: "f4"), as: "prod-db-agent").split(separator: ".")
            try h.push("\(genuine[0]).\(Base64URL.encode(Array(forgedDrop(id: "f4").utf8))).\(genuine[2])")  // payload swapped
            try h.push(try fixture.sign(forgedDrop(agent: "alice@example.com", id: "f5"), as: "alice@example.com"))  // no agent role
            let unknownCustomer = Wire.coordinate("f6", customer: "cust-2", replyTo: "test:forged", executeNow: true,
                                                  [Wire.recommendation("x", agent: "prod-db-agent", action: "drop_database", resources: ["db-1"])])
            try h.push(try fixture.sign(unknownCustomer, as: "prod-db-agent"))  // a customer it was not given

            // v3: only the verified ones are answered (f1 is unsigned, f2 and f4 do not verify).
            let letters = try deadLetters(h, queue: "coord:requests", count: 6)
            var replies: [String: String] = [:]
            for _ in 0..<3 {
                let reply = try h.reply(on: "test:forged")
                replies[reply["request_id"] as? String ?? "?"] = code(reply)
            }
            #expect(replies == ["f3": "forbidden", "f5": "forbidden", "f6": "forbidden"])
            #expect(try h.length("test:forged") == 0)
            #expect(letters.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" })
            #expect(letters.contains { ($0["raw"] as? String)?.contains("drop_database") == true }, "the unsigned one is kept as sent")
            #expect(try state(h) == before)
            #expect(try h.length("coord:agent:prod-db-agent:steps") == 0)
            #expect(try h.events().isEmpty)

            // The same request signed by its agent goes through (nothing above was refused by accident).
            try h.push(try fixture.sign(forgedDrop(id: "ok"), as: "prod-db-agent"))
            let ok = try h.reply(on: "test:forged")
            #expect(ok["ok"] as? Bool == true, "\(ok)")
            try h.wait("the step on prod-db-agent's list") { try h.length("coord:agent:prod-db-agent:steps") == 1 }
        }

        @Test("plain-text and unsigned decisions are refused; a critical approval signed by two approvers is approved, events say who")
        func decisions() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            let request = Wire.coordinate("crit", customer: "cust-1", replyTo: "test:coord", executeNow: true,
                                          [Wire.recommendation("mig", agent: "prod-db-agent", action: "migrate_database", risk: "critical", resources: ["db-1"])])
            try h.push(try fixture.sign(request, as: "prod-db-agent"))
            let result = try #require(try h.reply(on: "test:coord")["result"] as? [String: Any])
            let approvalID = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            try h.wait("approval.requested") { try h.events().count >= 2 }
            let before = try state(h)
            let eventsBefore = try h.events().count

            func decision(_ user: String, _ extra: [String: Any] = [:]) -> String {
                Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": user, "reply_to": "test:decisions"]
                    .merging(extra) { $1 })
            }
            // The issue's forgery: two plain-text lines from one writer, claiming two people.
            try h.push("approve \(approvalID) alice@example.com", to: "coord:approvals")
            try h.push("approve \(approvalID) bob@example.com", to: "coord:approvals")
            try h.push(decision("alice@example.com"), to: "coord:approvals")  // JSON, unsigned
            try h.push(try fixture.sign(decision("bob@example.com"), as: "alice@example.com"), to: "coord:approvals")  // alice voting as bob
            try h.push(try fixture.sign(decision("cost-agent-1"), as: "cost-agent-1"), to: "coord:approvals")  // an agent, not an approver
            try h.push(try fixture.sign("approve \(approvalID) alice@example.com", as: "alice@example.com"), to: "coord:approvals")  // signed plain text
            let letters = try deadLetters(h, queue: "coord:approvals", count: 6)
            #expect(letters.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" })
            var codes: [String?] = []
            for _ in 0..<2 { codes.append(code(try h.reply(on: "test:decisions"))) }
            #expect(codes == ["forbidden", "forbidden"], "the two signed JSON ones are answered (v3: the unsigned one is not)")
            #expect(try h.length("test:decisions") == 0)
            #expect(try state(h) == before)
            #expect(try h.events().count == eventsBefore)

            // Signed by the two approvers with the daemon's signing helper: approved.
            try h.push(try fixture.sign(decision("alice@example.com"), as: "alice@example.com"), to: "coord:approvals")
            let first = try h.reply(on: "test:decisions")
            #expect((first["result"] as? [String: Any])?["status"] as? String == "pending", "\(first)")
            try h.push(try fixture.sign(decision("bob@example.com"), as: "bob@example.com"), to: "coord:approvals")
            let second = try #require(try h.reply(on: "test:decisions")["result"] as? [String: Any])
            #expect(second["status"] as? String == "approved")
            #expect(second["approved_by"] as? String == "bob@example.com")
            let planID = try #require(second["plan_id"] as? String)
            _ = try h.waitForPlan(planID, status: "completed")
            let events = try h.events()
            let partial = try #require(events.first { $0["type"] as? String == "approval.partially_approved" })
            let approved = try #require(events.first { $0["type"] as? String == "approval.approved" })
            #expect((partial["data"] as? [String: Any])?["verified"] as? Bool == true)
            #expect((partial["data"] as? [String: Any])?["principal"] as? String == "alice@example.com")
            #expect((approved["data"] as? [String: Any])?["verified"] as? Bool == true)
            #expect((approved["data"] as? [String: Any])?["principal"] as? String == "bob@example.com")
        }

        @Test("with --executor agents a step result counts only when signed by the agent the step was sent to")
        func stepResults() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture, executor: .agents)
            let request = Wire.coordinate("step", customer: "cust-1", replyTo: "test:coord", executeNow: true,
                                          [Wire.recommendation("up", agent: "cost-agent-1", action: "scale_up", resources: ["i-1"])])
            try h.push(try fixture.sign(request, as: "cost-agent-1"))
            let result = try #require(try h.reply(on: "test:coord")["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            guard let (_, stepBytes) = try h.redis.blockingPopRight("coord:agent:cost-agent-1:steps", timeout: 15) else {
                Issue.record("no step dispatched to cost-agent-1")
                return
            }
            let step = try Harness.object(stepBytes)
            var answer: [String: Any] = ["plan_id": planID, "step_id": step["step_id"]!, "ok": true, "result": ["done": true], "rollback_data": [:]]
            // Echo what the dispatch carries (the attempt token of section 5, when present).
            for field in ["attempt", "rollback"] { if let value = step[field] { answer[field] = value } }
            let message = Wire.json(answer)
            let plan = try #require(try h.redis.send("GET", h.keys.plan(planID)).bytes)
            let eventsBefore = try h.events().count

            try h.push(message, to: "coord:steps:results")  // unsigned: "anyone" completing the plan
            try h.push(try fixture.sign(message, as: "prod-db-agent"), to: "coord:steps:results")  // another agent
            try h.push(try fixture.sign(message, as: "alice@example.com"), to: "coord:steps:results")  // not an agent
            try h.push(try JWS.sign(payload: message, kid: "cost-agent-1", privateKey: Curve25519.Signing.PrivateKey()), to: "coord:steps:results")
            let letters = try deadLetters(h, queue: "coord:steps:results", count: 4)
            #expect(letters.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" })
            #expect(try h.redis.send("GET", h.keys.plan(planID)).bytes == plan)
            #expect(try h.events().count == eventsBefore)
            #expect(try h.plan(planID)?["status"] as? String == "running")

            try h.push(try fixture.sign(message, as: "cost-agent-1"), to: "coord:steps:results")
            _ = try h.waitForPlan(planID, status: "completed")
        }

        @Test("coordinatord agent --key answers signed: the plan completes under --trust with --executor agents")
        func signedSimulatedAgent() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture, executor: .agents)
            let keyPath = fixture.directory.appendingPathComponent("cost-agent-1.key").path
            try Data((fixture.keys["cost-agent-1"]!.rawRepresentation.base64EncodedString() + "\n").utf8).write(to: URL(fileURLWithPath: keyPath))
            // --key refuses a key file its group or others can read.
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
            _ = try h.launch(["agent", "--id", "cost-agent-1", "--key", keyPath])
            let request = Wire.coordinate("signed-agent", customer: "cust-1", replyTo: "test:coord", executeNow: true,
                                          [Wire.recommendation("up", agent: "cost-agent-1", action: "scale_up", resources: ["i-1"])])
            try h.push(try fixture.sign(request, as: "cost-agent-1"))
            let result = try #require(try h.reply(on: "test:coord")["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            _ = try h.waitForPlan(planID, status: "completed", timeout: 30)
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("a client built from RFC 7515 and RFC 8037 by hand is accepted")
        func handBuiltClient() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try start(h, fixture)
            // RFC 7515 section 3.1 / 5.1, with RFC 8037's EdDSA: protected header, payload, signing
            // input ASCII(BASE64URL(header)) || '.' || ASCII(BASE64URL(payload)), Ed25519 signature.
            func base64url(_ bytes: [UInt8]) -> String {
                Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                    .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            }
            let header = "{\"alg\":\"EdDSA\",\"kid\":\"cost-agent-1\",\"iat\":\(Int(Date().timeIntervalSince1970))}"
            let payload = Wire.coordinate("rfc", customer: "cust-1", replyTo: "test:rfc",
                                          [Wire.recommendation("rfc-1", agent: "cost-agent-1", action: "scale_up", resources: ["i-9"])])
            let signingInput = base64url(Array(header.utf8)) + "." + base64url(Array(payload.utf8))
            let key = try #require(fixture.keys["cost-agent-1"])
            let signature = try key.signature(for: Array(signingInput.utf8))
            try h.push(signingInput + "." + base64url(Array(signature)))
            let reply = try h.reply(on: "test:rfc")
            #expect(reply["ok"] as? Bool == true, "\(reply)")
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-1"), "rfc-1").integer == 1)
        }

        @Test("risk_floor raises a declared low drop_database to critical: two approvers, declared level recorded")
        func riskFloor() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard(riskFloor: ["drop_database": "critical"])
            defer { fixture.remove() }
            try start(h, fixture, executor: .agents)
            try h.push(try fixture.sign(forgedDrop(id: "floor"), as: "prod-db-agent"))
            let reply = try h.reply(on: "test:forged")
            let result = try #require(reply["result"] as? [String: Any], "\(reply)")
            #expect(result["auto_approved"] as? Int == 0)
            #expect((result["execution_plans"] as? [Any])?.isEmpty == true)
            let recommendation = try #require((result["recommendations"] as? [[String: Any]])?.first)
            #expect(recommendation["risk_level"] as? String == "critical")
            #expect((recommendation["metadata"] as? [String: Any])?["declared_risk_level"] as? String == "low")
            let approval = try #require((result["approvals"] as? [[String: Any]])?.first)
            #expect(approval["risk_level"] as? String == "critical")
            #expect(approval["required_approvals"] as? Int == 2)
            #expect(try h.length("coord:agent:prod-db-agent:steps") == 0)

            let id = try #require(approval["id"] as? String)
            for user in ["alice@example.com", "bob@example.com"] {
                let decision = Wire.json(["approval_id": id, "decision": "approve", "user_id": user, "reply_to": "test:decisions"])
                try h.push(try fixture.sign(decision, as: user), to: "coord:approvals")
                let status = (try h.reply(on: "test:decisions")["result"] as? [String: Any])?["status"] as? String
                #expect(status == (user.hasPrefix("alice") ? "pending" : "approved"))
            }
            try h.wait("the step dispatched after the second approval") { try h.length("coord:agent:prod-db-agent:steps") == 1 }
        }

        @Test("risk_floor alone (no principals) applies to unsigned requests")
        func riskFloorWithoutPrincipals() throws {
            let h = try Harness()
            let fixture = try TrustFixture([], riskFloor: ["drop_database": "high"])
            defer { fixture.remove() }
            try start(h, fixture)
            try h.push(forgedDrop(id: "plain"))
            let result = try #require(try h.reply(on: "test:forged")["result"] as? [String: Any])
            let approval = try #require((result["approvals"] as? [[String: Any]])?.first)
            #expect(approval["risk_level"] as? String == "high")
            #expect(approval["required_approvals"] as? Int == 1)
        }

        @Test("reads and execute_plan: readers and approvers read anything, agents only their customers' objects")
        func readsAndExecute() throws {
            let h = try Harness()
            let fixture = try TrustFixture([
                .init(id: "agent-1", roles: ["agent"], customers: ["cust-1"], actions: ["*"]),
                .init(id: "agent-2", roles: ["agent"], customers: ["cust-2"], actions: ["*"]),
                .init(id: "reader-1", roles: ["reader"]),
                .init(id: "alice", roles: ["approver"]),
            ])
            defer { fixture.remove() }
            try start(h, fixture)
            try h.push(try fixture.sign(Wire.coordinate("r", customer: "cust-1", replyTo: "test:coord",
                                                        [Wire.recommendation("a", agent: "agent-1", action: "scale_up", resources: ["i-1"])]),
                                        as: "agent-1"))
            let result = try #require(try h.reply(on: "test:coord")["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            func ask(_ kind: String, as kid: String, _ fields: [String: Any] = [:]) throws -> [String: Any] {
                let message = Wire.json(["kind": kind, "reply_to": "test:ask"].merging(fields) { $1 })
                try h.push(try fixture.sign(message, as: kid))
                return try h.reply(on: "test:ask")
            }
            #expect(try ask("get_plan", as: "reader-1", ["plan_id": planID])["ok"] as? Bool == true)
            #expect(try ask("get_plan", as: "agent-1", ["plan_id": planID])["ok"] as? Bool == true)
            #expect(code(try ask("get_plan", as: "agent-2", ["plan_id": planID])) == "forbidden")
            #expect(code(try ask("list_approvals", as: "agent-2", ["customer_id": "cust-1"])) == "forbidden")
            #expect(try ask("list_approvals", as: "alice", ["customer_id": "cust-1"])["ok"] as? Bool == true)
            #expect(code(try ask("execute_plan", as: "reader-1", ["plan_id": planID])) == "forbidden")
            #expect(code(try ask("execute_plan", as: "agent-2", ["plan_id": planID])) == "forbidden")
            #expect(try h.plan(planID)?["status"] as? String == "pending")
            #expect(try ask("execute_plan", as: "alice", ["plan_id": planID])["ok"] as? Bool == true)
            _ = try h.waitForPlan(planID, status: "completed")
            #expect(try deadLetters(h, queue: "coord:requests", count: 4).count == 4)
        }

        @Test("the built binary: keys generate writes a 0600 key and the trust line; run --trust accepts its signature; approve --key signs; a bad trust file stops start-up")
        func binary() throws {
            let h = try Harness()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trust-bin-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let keyPath = directory.appendingPathComponent("agent.key").path
            let (status, output, _) = try run(["keys", "generate", "--id", "cost-agent-1", "--out", keyPath, "--role", "agent"])
            #expect(status == 0)
            let mode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)
            let line = output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.hasPrefix("\"cost-agent-1\": {\"public_key\":"))
            // The printed line, pasted into a trust file with the agent's customers and actions.
            let entry = line.replacingOccurrences(of: "\"roles\":[\"agent\"]", with: "\"roles\":[\"agent\"],\"customers\":[\"*\"],\"actions\":[\"*\"]")
            let trustPath = directory.appendingPathComponent("trust.json").path
            try Data("{\"principals\":{\(entry)}}".utf8).write(to: URL(fileURLWithPath: trustPath))
            let (again, _, refusal) = try run(["keys", "generate", "--id", "x", "--out", keyPath])
            #expect(again != 0 && refusal.contains("already exists"))

            // An approver's key too, and the two lines in one trust file.
            let aliceKey = directory.appendingPathComponent("alice.key").path
            let (aliceStatus, aliceLine, _) = try run(["keys", "generate", "--id", "alice@example.com", "--out", aliceKey, "--role", "approver"])
            #expect(aliceStatus == 0)
            try Data("{\"principals\":{\(entry),\(aliceLine.trimmingCharacters(in: .whitespacesAndNewlines))}}".utf8)
                .write(to: URL(fileURLWithPath: trustPath))

            let daemon = try h.launch(["run", "--trust", trustPath, "--sim-speed", "0"])
            let key = try SigningKeyFile.load(path: keyPath)
            let request = Wire.coordinate("bin", replyTo: "test:bin", [Wire.recommendation("b1", action: "migrate_database", risk: "high", resources: ["i-1"])])
            try h.push(request)  // unsigned: refused, unanswered (v3)
            try h.push(try JWS.sign(payload: request, kid: "cost-agent-1", privateKey: key))
            let accepted = try h.reply(on: "test:bin", timeout: 30)
            #expect(accepted["ok"] as? Bool == true)
            let approvalID = try #require(((accepted["result"] as? [String: Any])?["approvals"] as? [[String: Any]])?.first?["id"] as? String)

            // coordinatord approve: unsigned refused, --key with another's key refused (neither answered), with her key applied.
            let (unsigned, _, unsignedError) = try run(["approve", approvalID, "--user", "alice@example.com", "--timeout", "2"], redisURL: h.server.url)
            #expect(unsigned == 1 && unsignedError.contains("no answer"), "\(unsignedError)")
            let (wrongKey, _, _) = try run(["approve", approvalID, "--user", "alice@example.com", "--key", keyPath, "--timeout", "2"], redisURL: h.server.url)
            #expect(wrongKey == 1)
            let (signed, signedOutput, signedError) = try run(["approve", approvalID, "--user", "alice@example.com", "--key", aliceKey], redisURL: h.server.url)
            #expect(signed == 0, "\(signedOutput) \(signedError)")
            let approved = try #require(try h.events().first { $0["type"] as? String == "approval.approved" })
            #expect((approved["data"] as? [String: Any])?["principal"] as? String == "alice@example.com")
            ChildProcess.stop(daemon)

            let badPath = directory.appendingPathComponent("bad.json").path
            try Data(#"{"principals":{"a":{"public_key":"short","roles":["agent"]}}}"#.utf8).write(to: URL(fileURLWithPath: badPath))
            let (badStatus, _, badError) = try run(["run", "--trust", badPath], redisURL: h.server.url)
            #expect(badStatus != 0)
            #expect(badError.contains("principals.a.public_key"), "\(badError)")
        }

        /// Runs the built binary to its end: exit status, standard output, standard error.
        func run(_ arguments: [String], redisURL: String? = nil) throws -> (Int32, String, String) {
            let process = Process()
            process.executableURL = Harness.binary
            process.arguments = arguments
            process.environment = ChildProcess.environment(redisURL.map { ["REDIS_URL": $0] } ?? [:])
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            let deadline = try ChildProcess.run(process, deadline: 60)
            let output = out.fileHandleForReading.readDataToEndOfFile()
            let error = err.fileHandleForReading.readDataToEndOfFile()
            try deadline.wait()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
        }
    }
}
