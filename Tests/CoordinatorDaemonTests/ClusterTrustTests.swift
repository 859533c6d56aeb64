import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// `TrustDaemonTests` and `TrustReplayTests` on a 3-master, 3-replica Redis Cluster
/// (PROTOCOL.md sections 10 and 11): ingress routes a JWS by its payload, the partition
/// verifies it, keeps its replay mark in the partition's slot and answers through its outbox.
/// The tests share one cluster, each under a prefix of its own.
extension RealRedis {
    @Suite("Trust on a Redis Cluster", .sharesMachine)
    struct ClusterTrustTests {
        static let shared = SharedCluster()

        func start(_ h: ClusterHarness, _ fixture: TrustFixture, executor: DaemonConfiguration.Executor = .agents,
                   replyPrefix: String? = nil) throws {
            try h.startDaemon {
                $0.trustFile = fixture.path
                $0.executor = executor
                $0.stepTimeout = 120
                $0.replyPrefix = replyPrefix
            }
        }

        func code(_ reply: [String: Any]) -> String? { Harness.code(reply) }

        func forgedDrop(_ h: ClusterHarness, agent: String = "prod-db-agent", risk: String = "low", id: String) -> String {
            Wire.coordinate(id, customer: "cust-1", replyTo: h.list("forged"), executeNow: true,
                            [Wire.recommendation("drop-1", agent: agent, action: "drop_database", risk: risk, resources: ["db-1"])])
        }

        /// A `coordinate` without `request_id`: nothing but its signature tells two copies apart.
        func executeNow(_ id: String, replyTo: String, resource: String) -> String {
            Wire.json(["kind": "coordinate", "customer_id": "cust-1", "execute_now": true, "reply_to": replyTo,
                       "recommendations": [Wire.recommendation(id, agent: "cost-agent-1", action: "scale_up", resources: [resource])]])
        }

        func planCreated(_ h: ClusterHarness) throws -> Int {
            try h.events().count { $0["type"] as? String == "plan.created" }
        }

        @Test("forged and unverified requests change nothing (the unverified get no reply, each is dead-lettered forbidden in its partition); a step result counts only when its agent signed it")
        func forgeries() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "forged")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                try start(h, fixture)
                let part = h.keys(customer: "cust-1")

                try h.push(forgedDrop(h, id: "f1"))  // unsigned
                try h.push(try JWS.sign(payload: forgedDrop(h, id: "f2"), kid: "prod-db-agent", privateKey: Curve25519.Signing.PrivateKey()))
                try h.push(try fixture.sign(forgedDrop(h, id: "f3"), as: "cost-agent-1"))  // a real agent, claiming another's id
                let genuine = try fixture.sign(forgedDrop(h, risk: "critical", id: "f4"), as: "prod-db-agent").split(separator: ".")
                try h.push("\(genuine[0]).\(Base64URL.encode(Array(forgedDrop(h, id: "f4").utf8))).\(genuine[2])")  // payload swapped
                try h.push(try fixture.sign(forgedDrop(h, agent: "alice@example.com", id: "f5"), as: "alice@example.com"))  // no agent role
                try h.push(try TrustFixture.sign(forgedDrop(h, id: "f6"), kid: "mallory", key: Curve25519.Signing.PrivateKey(),
                                                 issuedAt: Int(Date().timeIntervalSince1970)))  // unknown kid

                let letters = try h.deadLettersEventually(count: 6)
                #expect(letters.count == 6)
                #expect(letters.allSatisfy { Harness.code($0) == "forbidden" }, "\(letters)")
                #expect(try h.length(part.dead) == 6, "every letter in cust-1's partition")
                var replies: [String: String] = [:]
                for _ in 0..<2 {
                    let reply = try h.reply(on: h.list("forged"))
                    replies[reply["request_id"] as? String ?? "?"] = code(reply)
                }
                #expect(replies == ["f3": "forbidden", "f5": "forbidden"], "only the verified ones are answered")
                try h.settle()
                #expect(try h.length(h.list("forged")) == 0)
                #expect(try h.client.send("EXISTS", part.active(customer: "cust-1")).integer == 0)
                #expect(try h.length(h.root.agentSteps("prod-db-agent")) == 0)
                #expect(try h.events().isEmpty)

                // A plan of cost-agent-1's, signed: its step result counts only signed by cost-agent-1.
                let request = Wire.coordinate("step", customer: "cust-1", replyTo: h.list("coord"), executeNow: true,
                                              [Wire.recommendation("up", agent: "cost-agent-1", action: "scale_up", resources: ["i-1"])])
                try h.push(try fixture.sign(request, as: "cost-agent-1"))
                let result = try #require(try h.reply(on: h.list("coord"))["result"] as? [String: Any])
                let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
                let popped = try #require(try h.client.blockingPop([h.root.agentSteps("cost-agent-1")], timeout: 20), "no step")
                let step = try Harness.object(popped.value)
                var answer: [String: Any] = ["plan_id": planID, "step_id": step["step_id"]!, "ok": true, "result": ["done": true], "rollback_data": [:]]
                for field in ["attempt", "rollback"] { if let value = step[field] { answer[field] = value } }
                let message = Wire.json(answer)
                let plan = try #require(try h.client.send("GET", part.plan(planID)).bytes)
                let eventsBefore = try h.events().count
                try h.push(message, to: "steps:results")  // unsigned
                try h.push(try fixture.sign(message, as: "prod-db-agent"), to: "steps:results")  // another agent
                try h.push(try fixture.sign(message, as: "alice@example.com"), to: "steps:results")  // not an agent
                try h.push(try JWS.sign(payload: message, kid: "cost-agent-1", privateKey: Curve25519.Signing.PrivateKey()), to: "steps:results")
                let stepLetters = try h.deadLettersEventually(count: 10).filter { ($0["queue"] as? String)?.hasSuffix("steps:results") == true }
                #expect(stepLetters.count == 4 && stepLetters.allSatisfy { Harness.code($0) == "forbidden" }, "\(stepLetters)")
                #expect(try h.client.send("GET", part.plan(planID)).bytes == plan)
                #expect(try h.events().count == eventsBefore)
                try h.push(try fixture.sign(message, as: "cost-agent-1"), to: "steps:results")
                _ = try h.waitForPlan(planID, status: "completed")
            }
        }

        @Test("plain-text and unsigned decisions are refused; a critical approval signed by two approvers is approved in its partition, events say who")
        func decisions() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "decide")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                try start(h, fixture, executor: .simulated)
                let request = Wire.coordinate("crit", customer: "cust-1", replyTo: h.list("coord"), executeNow: true,
                                              [Wire.recommendation("mig", agent: "prod-db-agent", action: "migrate_database", risk: "critical", resources: ["db-1"])])
                try h.push(try fixture.sign(request, as: "prod-db-agent"))
                let result = try #require(try h.reply(on: h.list("coord"))["result"] as? [String: Any])
                let approvalID = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
                #expect(approvalID.hasPrefix("\(h.partitions.of(customer: "cust-1")).") )
                let part = try h.keys(id: approvalID)
                let stored = try #require(try h.client.send("GET", part.approval(approvalID)).bytes)
                let eventsBefore = try h.events().count

                let replies = h.list("decisions")
                func decision(_ user: String) -> String {
                    Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": user, "reply_to": replies])
                }
                try h.push("approve \(approvalID) alice@example.com", to: "approvals")
                try h.push("approve \(approvalID) bob@example.com", to: "approvals")
                try h.push(decision("alice@example.com"), to: "approvals")  // JSON, unsigned
                try h.push(try fixture.sign(decision("bob@example.com"), as: "alice@example.com"), to: "approvals")  // alice voting as bob
                try h.push(try fixture.sign(decision("cost-agent-1"), as: "cost-agent-1"), to: "approvals")  // not an approver
                try h.push(try fixture.sign("approve \(approvalID) alice@example.com", as: "alice@example.com"), to: "approvals")
                let letters = try h.deadLettersEventually(count: 6)
                #expect(letters.allSatisfy { Harness.code($0) == "forbidden" }, "\(letters)")
                #expect(try h.length(part.dead) == 6, "every letter in the approval's partition")
                var codes: [String?] = []
                for _ in 0..<2 { codes.append(code(try h.reply(on: replies))) }
                #expect(codes == ["forbidden", "forbidden"], "the two signed JSON ones are answered")
                try h.settle()
                #expect(try h.length(replies) == 0)
                #expect(try h.client.send("GET", part.approval(approvalID)).bytes == stored)
                #expect(try h.events().count == eventsBefore)

                try h.push(try fixture.sign(decision("alice@example.com"), as: "alice@example.com"), to: "approvals")
                let first = try h.reply(on: replies)
                #expect((first["result"] as? [String: Any])?["status"] as? String == "pending", "\(first)")
                try h.push(try fixture.sign(decision("bob@example.com"), as: "bob@example.com"), to: "approvals")
                let second = try #require(try h.reply(on: replies)["result"] as? [String: Any])
                #expect(second["status"] as? String == "approved")
                let planID = try #require(second["plan_id"] as? String)
                _ = try h.waitForPlan(planID, status: "completed")
                let events = try h.events()
                let partial = try #require(events.first { $0["type"] as? String == "approval.partially_approved" })
                let approved = try #require(events.first { $0["type"] as? String == "approval.approved" })
                #expect((partial["data"] as? [String: Any])?["principal"] as? String == "alice@example.com")
                #expect((approved["data"] as? [String: Any])?["verified"] as? Bool == true)
                #expect((approved["data"] as? [String: Any])?["principal"] as? String == "bob@example.com")
            }
        }

        @Test("replays: the same signed bytes make one plan and every copy gets the first reply; a replayed decision is already_processed; the marks sit in the partition's slot")
        func replays() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "replay")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                try start(h, fixture)
                let part = h.keys(customer: "cust-1")

                let signed = try fixture.sign(executeNow("up-1", replyTo: h.list("replay"), resource: "i-1"), as: "cost-agent-1")
                try h.push(signed)
                let first = try h.reply(on: h.list("replay"))
                #expect(first["ok"] as? Bool == true, "\(first)")
                try h.push(signed)
                let second = try h.reply(on: h.list("replay"))
                #expect(NSDictionary(dictionary: second) == NSDictionary(dictionary: first), "\(second)")

                // Both copies in one LPUSH: one ingress batch.
                let twice = try fixture.sign(executeNow("up-2", replyTo: h.list("replay-2"), resource: "i-2"), as: "cost-agent-1")
                _ = try h.client.send("LPUSH", h.root.requests, twice, twice)
                let a = try h.reply(on: h.list("replay-2"))
                let b = try h.reply(on: h.list("replay-2"))
                #expect(a["ok"] as? Bool == true, "\(a)")
                #expect(NSDictionary(dictionary: a) == NSDictionary(dictionary: b))

                // With a request_id, the replay is answered from the stored reply.
                let withID = try fixture.sign(Wire.coordinate("with-id", replyTo: h.list("replay-3"), executeNow: true,
                                                              [Wire.recommendation("up-3", agent: "cost-agent-1", resources: ["i-3"])]), as: "cost-agent-1")
                try h.push(withID)
                let c = try h.reply(on: h.list("replay-3"))
                try h.push(withID)
                #expect(NSDictionary(dictionary: try h.reply(on: h.list("replay-3"))) == NSDictionary(dictionary: c))

                // A pending approval, rejected by a signed decision; the decision again changes nothing.
                let request = Wire.coordinate("high", replyTo: h.list("coord"),
                                              [Wire.recommendation("high-1", agent: "cost-agent-1", action: "migrate_database", risk: "high", resources: ["db-1"])])
                try h.push(try fixture.sign(request, as: "cost-agent-1"))
                let approvalID = try #require(((try h.reply(on: h.list("coord"))["result"] as? [String: Any])?["approvals"] as? [[String: Any]])?.first?["id"] as? String)
                let reject = try fixture.sign(Wire.json(["approval_id": approvalID, "decision": "reject", "user_id": "alice@example.com",
                                                         "reason": "no", "reply_to": h.list("decide")]), as: "alice@example.com")
                try h.push(reject, to: "approvals")
                #expect((try h.reply(on: h.list("decide"))["result"] as? [String: Any])?["status"] as? String == "rejected")
                // Approval events only: the plans started above add their own meanwhile.
                func approvalEvents() throws -> Int {
                    try h.events().filter { ($0["type"] as? String)?.hasPrefix("approval.") == true }.count
                }
                let eventsAfterReject = try approvalEvents()
                try h.push(reject, to: "approvals")
                #expect(code(try h.reply(on: h.list("decide"))) == "already_processed")

                try h.settle()
                #expect(try approvalEvents() == eventsAfterReject)
                #expect(try planCreated(h) == 3, "one plan per distinct message")
                try h.wait("the three plans' steps sent") { try h.length(h.root.agentSteps("cost-agent-1")) >= 3 }
                #expect(try h.length(h.root.agentSteps("cost-agent-1")) == 3)
                #expect(try h.client.send("HLEN", part.active(customer: "cust-1")).integer == 3)
                #expect(try h.deadLetters().isEmpty, "a replay is a duplicate, not a dead letter")
                // The replay marks: one per distinct signed message, each in cust-1's partition's slot.
                let marks = try h.allKeys().filter { $0.contains(":sig:") }
                #expect(marks.count == 5, "\(marks)")
                #expect(marks.allSatisfy { $0.hasPrefix(part.prefix + ":") }, "\(marks)")
            }
        }

        @Test("two daemons taking copies of the same signed bytes at once: exactly one has effects, every copy gets the first reply")
        func replayRace() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "race")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                try start(h, fixture)
                try start(h, fixture)
                let signed = try fixture.sign(executeNow("race-1", replyTo: h.list("race"), resource: "i-race"), as: "cost-agent-1")
                _ = try h.client.send(RedisCommand("LPUSH", arguments: [h.root.requests] + Array(repeating: signed, count: 12)))
                var replies: [[String: Any]] = []
                for _ in 0..<12 { replies.append(try h.reply(on: h.list("race"), timeout: 30)) }
                try h.settle()
                #expect(try h.length(h.list("race")) == 0)
                #expect(Set(replies.map { NSDictionary(dictionary: $0) }).count == 1, "every copy answered with the one reply")
                #expect(replies.first?["ok"] as? Bool == true)
                #expect(try planCreated(h) == 1)
                #expect(try h.client.send("HLEN", h.keys(customer: "cust-1").active(customer: "cust-1")).integer == 1)
            }
        }

        @Test("a signature without iat, too old or too far ahead is refused as expired; with --reply-prefix a reply_to outside P<kid>: is refused unanswered, its own namespace answered")
        func windowAndNamespace() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "window")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                let prefix = "test-\(h.prefix)-replies:"
                try start(h, fixture, replyPrefix: prefix)
                let own = "\(prefix)cost-agent-1:"
                let now = Int(Date().timeIntervalSince1970)
                func request(_ id: String, replyTo: String = "\(prefix)cost-agent-1:time") -> String {
                    Wire.coordinate(id, replyTo: replyTo, [Wire.recommendation("t-\(id)", agent: "cost-agent-1", resources: ["i-\(id)"])])
                }
                try h.push(try fixture.sign(request("old"), as: "cost-agent-1", issuedAt: now - 1000))
                try h.push(try fixture.sign(request("ahead"), as: "cost-agent-1", issuedAt: now + 600))
                try h.push(try fixture.sign(request("none"), as: "cost-agent-1", withoutIssuedAt: true))
                var answers: [String: [String: Any]] = [:]
                for _ in 0..<3 {
                    let reply = try h.reply(on: own + "time")
                    answers[reply["request_id"] as? String ?? "?"] = reply
                }
                for id in ["old", "ahead", "none"] {
                    let reply = try #require(answers[id], "no answer to \(id): \(answers)")
                    #expect(code(reply) == "forbidden", "\(id): \(reply)")
                    let text = ((reply["error"] as? [String: Any])?["message"] as? String) ?? ""
                    #expect(text.contains("signature expired"), "\(reply)")
                }
                try h.push(try fixture.sign(request("recent"), as: "cost-agent-1", issuedAt: now - 200))
                #expect(try h.reply(on: own + "time")["ok"] as? Bool == true)

                // Outside the signer's namespace (another's, a kid it is a prefix of, a decision's): refused, unanswered.
                let foreign = "\(prefix)alice@example.com:inbox"
                try h.push(try fixture.sign(request("outside", replyTo: foreign), as: "cost-agent-1"))
                try h.push(try fixture.sign(request("sibling", replyTo: "\(prefix)cost-agent-10:x"), as: "cost-agent-1"))
                let decision = Wire.json(["approval_id": "1.a", "decision": "approve", "user_id": "alice@example.com", "reply_to": own + "x"])
                try h.push(try fixture.sign(decision, as: "alice@example.com"), to: "approvals")
                let letters = try h.deadLettersEventually(count: 6)
                #expect(letters.count == 6 && letters.allSatisfy { Harness.code($0) == "forbidden" }, "\(letters)")
                try h.push(try fixture.sign(request("own", replyTo: own + "r1"), as: "cost-agent-1"))
                #expect(try h.reply(on: own + "r1")["ok"] as? Bool == true)
                try h.settle()
                for list in [foreign, "\(prefix)cost-agent-10:x", own + "x", own + "time"] {
                    #expect(try h.length(list) == 0, "\(list)")
                }
                let active = h.keys(customer: "cust-1").active(customer: "cust-1")
                #expect(try h.client.send("HKEYS", active).array?.compactMap(\.string).sorted() == ["t-own", "t-recent"])
            }
        }

        @Test("signed reads and execute_plan routed by the plan id inside the JWS: readers and approvers read anything, agents only their customers' objects")
        func readsAndExecute() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "reads")
                defer { h.stop() }
                let fixture = try TrustFixture([
                    .init(id: "agent-1", roles: ["agent"], customers: ["cust-1"], actions: ["*"]),
                    .init(id: "agent-2", roles: ["agent"], customers: ["cust-2"], actions: ["*"]),
                    .init(id: "reader-1", roles: ["reader"]),
                    .init(id: "alice", roles: ["approver"]),
                ])
                defer { fixture.remove() }
                try start(h, fixture, executor: .simulated)
                try h.push(try fixture.sign(Wire.coordinate("r", customer: "cust-1", replyTo: h.list("coord"),
                                                            [Wire.recommendation("a", agent: "agent-1", action: "scale_up", resources: ["i-1"])]),
                                            as: "agent-1"))
                let result = try #require(try h.reply(on: h.list("coord"))["result"] as? [String: Any])
                let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
                // Another partition than cust-2's, so a read routed by the signer's customer would miss it.
                #expect(h.partitions.of(customer: "cust-1") != h.partitions.of(customer: "cust-2"))
                func ask(_ kind: String, as kid: String, _ fields: [String: Any] = [:]) throws -> [String: Any] {
                    let message = Wire.json(["kind": kind, "reply_to": h.list("ask")].merging(fields) { $1 })
                    try h.push(try fixture.sign(message, as: kid))
                    return try h.reply(on: h.list("ask"))
                }
                let read = try ask("get_plan", as: "reader-1", ["plan_id": planID])
                #expect((read["result"] as? [String: Any])?["id"] as? String == planID, "\(read)")
                #expect(try ask("get_plan", as: "agent-1", ["plan_id": planID])["ok"] as? Bool == true)
                #expect(code(try ask("get_plan", as: "agent-2", ["plan_id": planID])) == "forbidden")
                #expect(code(try ask("list_approvals", as: "agent-2", ["customer_id": "cust-1"])) == "forbidden")
                #expect(try ask("list_approvals", as: "alice", ["customer_id": "cust-1"])["ok"] as? Bool == true)
                #expect(code(try ask("execute_plan", as: "reader-1", ["plan_id": planID])) == "forbidden")
                #expect(code(try ask("execute_plan", as: "agent-2", ["plan_id": planID])) == "forbidden")
                #expect(try h.plan(planID)?["status"] as? String == "pending")
                #expect(try ask("execute_plan", as: "alice", ["plan_id": planID])["ok"] as? Bool == true)
                _ = try h.waitForPlan(planID, status: "completed")
                let letters = try h.deadLettersEventually(count: 4)
                #expect(letters.count == 4, "\(letters)")
                #expect(try h.length(try h.keys(id: planID).dead) == 4, "the plan's partition refused them")
            }
        }

        @Test("coordinatord agent --cluster --key serves its step list through the cluster client: plans of customers in several partitions complete under --trust")
        func simulatedAgent() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "agent")
                defer { h.stop() }
                let fixture = try TrustFixture.standard()
                defer { fixture.remove() }
                try start(h, fixture)
                let agent = "application-agent"  // may act for any customer
                let keyPath = fixture.directory.appendingPathComponent("\(agent).key").path
                try Data((fixture.keys[agent]!.rawRepresentation.base64EncodedString() + "\n").utf8).write(to: URL(fileURLWithPath: keyPath))
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
                // A plain URL of one node, made a cluster by the flag.
                let seed = try #require(cluster.servers.first?.port)
                let process = Process()
                process.executableURL = Harness.binary
                process.arguments = ["agent", "--cluster", "--id", agent, "--key", keyPath, "--prefix", h.prefix]
                process.environment = ChildProcess.environment(["REDIS_URL": "redis://127.0.0.1:\(seed)"])
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try ChildProcess.run(process)
                defer { _ = ChildProcess.stop(process) }

                let customers = (0..<24).map { "agent-cust-\($0)" }
                let touched = Set(customers.map { h.partitions.of(customer: $0) })
                #expect(touched.count >= 5, "the customers cover several partitions: \(touched)")
                for (c, customer) in customers.enumerated() {
                    let request = Wire.coordinate("a-\(c)", customer: customer, replyTo: h.list("coord"), executeNow: true,
                                                  [Wire.recommendation("up-\(c)", agent: agent, action: "scale_up", resources: ["i-\(c)"])])
                    try h.push(try fixture.sign(request, as: agent))
                }
                var plans: [String] = []
                for _ in customers {
                    let reply = try h.reply(on: h.list("coord"))
                    let id = ((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]])?.first?["id"] as? String
                    plans.append(try #require(id, "\(reply)"))
                }
                for plan in plans { _ = try h.waitForPlan(plan, status: "completed", timeout: 30) }
                try h.settle()
                #expect(try h.deadLetters().isEmpty, "every signed result was accepted")
                #expect(try h.length(h.root.agentSteps(agent)) == 0)
                #expect(try h.events().count { $0["type"] as? String == "plan.completed" } == customers.count)
            }
        }
    }
}
