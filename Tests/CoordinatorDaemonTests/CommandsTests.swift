import CoordinatorDaemon
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// The commands for people (PROTOCOL.md section 8), run as the built binary against a live daemon.
    @Suite("Commands for people against a live daemon", .sharesMachine)
    struct CommandsTests {
        /// A daemon with one pending high-risk approval (scenario 2, execute_now) and its id.
        private func withPendingApproval(_ h: Harness) throws -> String {
            try h.startDaemon()
            try h.push(fixture("scenario2-approval"))
            let reply = try h.reply(on: "test:replies:scenario-2")
            let result = try #require(reply["result"] as? [String: Any])
            let approvals = try #require(result["approvals"] as? [[String: Any]])
            return try #require(approvals.first?["id"] as? String)
        }

        private func expectReadable(_ result: CLI.Result, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(result.lines.allSatisfy { $0.count <= 80 }, "wider than 80 columns:\n\(result.out)", sourceLocation: sourceLocation)
            #expect(!result.out.contains("\u{1B}["), "colour codes when not on a terminal", sourceLocation: sourceLocation)
        }

        @Test("status: live daemons, queues and in flight, pending approvals, dead letters; table and --json")
        func status() throws {
            let h = try Harness()
            let cli = CLI(redisURL: h.server.url)
            let none = try cli.run(["status"])
            #expect(none.status == 0)
            #expect(none.out.contains("no live daemon"))

            let daemon = try h.startDaemon()
            try h.push("garbage")
            try h.push(Wire.coordinate("s-1", replyTo: "test:s", autoApprove: false,
                                       [Wire.recommendation("rec-1", risk: "high", resources: ["x"])]))
            _ = try h.reply(on: "test:s")
            try h.wait("the dead letter") { try h.length(h.keys.dead) == 1 }
            try h.push("{\"a\":1}", to: "coord:steps:results")
            try h.wait("a heartbeat") { try HealthCheck.liveWorkers(h.redis, keys: h.keys).count == 1 }

            let table = try cli.run(["status"])
            #expect(table.status == 0, "\(table)")
            expectReadable(table)
            #expect(table.out.contains("1 live"))
            #expect(table.out.contains(String(daemon.workerID.prefix(12))))
            #expect(table.lines.contains { $0.hasPrefix("coord:steps:results") && $0.hasSuffix(" 1          0") }, "\(table.out)")
            #expect(table.lines.contains { $0.hasPrefix("pending approvals  1 (next expires in 23 h)") }, "\(table.out)")
            #expect(table.lines.contains("dead letters       1"))

            let json = try cli.run(["status", "--json"])
            #expect(json.status == 0)
            let object = try #require(json.jsonLines().first)
            #expect((object["daemons"] as? [[String: Any]])?.first?["worker"] as? String == daemon.workerID)
            let queues = try #require(object["queues"] as? [String: [String: Int]])
            #expect(queues["steps:results"]?["waiting"] == 1)
            #expect(queues["requests"]?["inflight"] == 0)
            #expect(object["approvals_pending"] as? Int == 1)
            #expect(object["dead_letters"] as? Int == 1)

            let unreachable = try cli.run(["status", "--redis-url", "redis://127.0.0.1:1/0"])
            #expect(unreachable.status == 1)
            #expect(unreachable.err.contains("cannot reach Redis"))
            let usage = try cli.run(["status", "--redis-url", "http://nope"])
            #expect(usage.status == 2, "\(usage)")
        }

        @Test("approvals, then approve ID --user by a unique prefix; a second decision is exit 1 with the daemon's error")
        func approvalsThenApprove() throws {
            let h = try Harness()
            let id = try withPendingApproval(h)
            let cli = CLI(redisURL: h.server.url)

            let table = try cli.run(["approvals"])
            #expect(table.status == 0, "\(table)")
            expectReadable(table)
            #expect(table.lines.first?.hasPrefix("ID        CUSTOMER  RECOMMENDATION  RISK  REQUESTED BY  EXPIRES") == true, "\(table.out)")
            let row = try #require(table.lines.dropFirst().first)
            #expect(row.hasPrefix(String(id.prefix(8))))
            #expect(row.contains("cust-2") && row.contains("rec-db-migrate") && row.contains("high") && row.contains("perf-agent-1"))
            #expect(row.hasSuffix("in 23 h"))

            let json = try cli.run(["approvals", "--json"])
            #expect(try json.jsonLines().map { $0["id"] as? String } == [id])
            let other = try cli.run(["approvals", "--customer", "cust-9"])
            #expect(other.status == 0)
            #expect(other.out == "no pending approvals for cust-9\n")
            #expect(try cli.run(["approvals", "--customer", "cust-2", "--json"]).jsonLines().count == 1)

            let approve = try cli.run(["approve", String(id.prefix(8)), "--user", "ops@example.com"])
            #expect(approve.status == 0, "\(approve)")
            #expect(approve.out.hasPrefix("approved \(id) (high risk, cust-2 rec-db-migrate); plan "), "\(approve.out)")
            let stored = try Harness.object(#require(try h.redis.send("GET", h.keys.approval(id)).bytes))
            #expect(stored["status"] as? String == "approved")
            #expect(stored["approved_by"] as? String == "ops@example.com")
            // The reply key was the command's own, and it cleaned it up.
            #expect(try h.redis.send("KEYS", "coordinatord:cli:*").array?.isEmpty == true)

            let again = try cli.run(["approve", id, "--user", "ops@example.com"])
            #expect(again.status == 1)
            #expect(again.err.contains("already_processed"), "\(again)")
            let gone = try cli.run(["approve", String(id.prefix(8)), "--user", "ops@example.com"])
            #expect(gone.status == 1)
            #expect(gone.err.contains("no pending approval with an id starting"))
            #expect(try cli.run(["approvals"]).out == "no pending approvals\n")
        }

        @Test("approve --json prints the reply (its reply key under --reply-prefix); usage errors exit 2")
        func approveJSONAndUsage() throws {
            let h = try Harness()
            let id = try withPendingApproval(h)
            let cli = CLI(redisURL: h.server.url)
            #expect(try cli.run(["approve", id]).status == 2)
            #expect(try cli.run(["approve", "--user", "u"]).status == 2)
            #expect(try cli.run(["reject", id, "--user", "u"]).status == 2)
            #expect(try cli.run(["approve", "bad id", "--user", "u"]).status == 2)
            #expect(try cli.run(["nonsense"]).status == 2)

            let approve = try cli.run(["approve", id, "--user", "ops@example.com", "--json", "--reply-prefix", "ops:"])
            #expect(approve.status == 0, "\(approve)")
            let reply = try #require(approve.jsonLines().first)
            #expect(reply["ok"] as? Bool == true)
            #expect(reply["kind"] as? String == "approval")
            #expect((reply["result"] as? [String: Any])?["plan_id"] is String)
            #expect((reply["request_id"] as? String)?.hasPrefix("cli-") == true)
        }

        @Test("reject ID --user --reason ends the approval; with no daemon the command says so and exits 1")
        func reject() throws {
            let h = try Harness()
            let id = try withPendingApproval(h)
            let cli = CLI(redisURL: h.server.url)
            let reject = try cli.run(["reject", id, "--user", "ops@example.com", "--reason", "not during the freeze"])
            #expect(reject.status == 0, "\(reject)")
            #expect(reject.out.hasPrefix("rejected \(id)"))
            #expect(reject.out.contains("not during the freeze"))
            let stored = try Harness.object(#require(try h.redis.send("GET", h.keys.approval(id)).bytes))
            #expect(stored["status"] as? String == "rejected")

            h.stopDaemons()
            let orphan = try cli.run(["approve", id, "--user", "ops@example.com", "--timeout", "1"])
            #expect(orphan.status == 1)
            #expect(orphan.err.contains("no answer within 1 s"), "\(orphan)")
        }

        @Test("approve --key FILE signs the decision as a JWS that a daemon under --trust accepts; unsigned or wrongly signed gets no answer")
        func approveSigned() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try h.startDaemon { $0.trustFile = fixture.path }
            let request = Wire.coordinate("k-1", replyTo: "test:k", autoApprove: false,
                                          [Wire.recommendation("rec-k", agent: "cost-agent-1", risk: "high", resources: ["k"])])
            try h.push(try fixture.sign(request, as: "cost-agent-1"))
            let result = try #require(try h.reply(on: "test:k")["result"] as? [String: Any])
            let id = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            let cli = CLI(redisURL: h.server.url)

            // v3: an unsigned decision is dead-lettered unanswered; the command says why it may be.
            let unsigned = try cli.run(["approve", id, "--user", "alice@example.com", "--timeout", "2"])
            #expect(unsigned.status == 1)
            #expect(unsigned.err.contains("answers only signed decisions (--key)"), "\(unsigned)")

            let keyFile = fixture.directory.appendingPathComponent("alice.key").path
            try (fixture.keys["alice@example.com"]!.rawRepresentation.base64EncodedString() + "\n")
                .write(toFile: keyFile, atomically: true, encoding: .utf8)
            // --key refuses a key file its group or others can read.
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
            let wrongKey = try cli.run(["approve", id, "--user", "bob@example.com", "--key", keyFile, "--timeout", "2"])
            #expect(wrongKey.status == 1)
            #expect(wrongKey.err.contains("no answer within 2 s"), "\(wrongKey)")
            #expect(try h.deadLetters().filter { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" }.count == 2)
            let badFile = try cli.run(["approve", id, "--user", "alice@example.com", "--key", "/nonexistent/key"])
            #expect(badFile.status == 1)
            #expect(badFile.err.contains("--key: key file /nonexistent/key"), "\(badFile)")

            let signed = try cli.run(["approve", id, "--user", "alice@example.com", "--key", keyFile])
            #expect(signed.status == 0, "\(signed)")
            #expect(signed.out.hasPrefix("approved \(id)"))
            let approved = try h.events().first { $0["type"] as? String == "approval.approved" }
            let data = approved?["data"] as? [String: Any]
            #expect(data?["verified"] as? Bool == true)
            #expect(data?["principal"] as? String == "alice@example.com")
        }

        @Test("plan ID: the plan and its steps with statuses and timings; unknown id is exit 1")
        func plan() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("p-1", replyTo: "test:p", executeNow: true,
                                       [Wire.recommendation("rec-spot", action: "migrate_to_spot", resources: ["i-1"],
                                                            parameters: ["simulate_failure": "migrate_workload"])]))
            let result = try #require(try h.reply(on: "test:p")["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            _ = try h.waitForPlan(planID, status: "rolled_back")
            let cli = CLI(redisURL: h.server.url)

            let shown = try cli.run(["plan", String(planID.prefix(6))])
            #expect(shown.status == 0, "\(shown)")
            expectReadable(shown)
            #expect(shown.lines.first == "plan \(planID)  rolled_back")
            #expect(shown.out.contains("rolled back: critical_step_failed"))
            let steps = shown.lines.drop { !$0.hasPrefix("#") }
            #expect(steps.count == 4, "\(shown.out)")
            #expect(steps.dropFirst().first?.contains("take_snapshot") == true)
            #expect(steps.dropFirst().first?.contains("rolled_back") == true)
            #expect(steps.dropFirst(2).first?.contains("failed") == true)
            #expect(steps.dropFirst(2).first?.contains("simulated failure") == true || steps.dropFirst(2).first?.contains("migrate_workload") == true)

            let json = try cli.run(["plan", planID, "--json"])
            #expect(try json.jsonLines().first?["id"] as? String == planID)
            let unknown = try cli.run(["plan", "ffffffff"])
            #expect(unknown.status == 1)
            #expect(unknown.err.contains("no plan with an id starting \"ffffffff\""))
        }

        @Test("events: the latest, --type, --customer, --since, --json with stream ids")
        func events() throws {
            let h = try Harness()
            let id = try withPendingApproval(h)
            let cli = CLI(redisURL: h.server.url)
            _ = try cli.run(["approve", id, "--user", "ops@example.com"])
            try h.wait("the plan to complete") { try h.events().contains { $0["type"] as? String == "plan.completed" } }

            let all = try cli.run(["events"])
            #expect(all.status == 0)
            let types = all.lines.map { $0.split(separator: " ", omittingEmptySubsequences: true)[2] }
            #expect(types.first == "approval.requested")
            #expect(types.contains("approval.approved") && types.last == "plan.completed", "\(all.out)")

            let plans = try cli.run(["events", "--type", "plan."])
            #expect(plans.lines.count == 3)
            #expect(plans.lines.allSatisfy { $0.contains(" plan.") })
            #expect(try cli.run(["events", "--type", "plan.completed"]).lines.count == 1)
            #expect(try cli.run(["events", "--customer", "cust-9"]).out.isEmpty)
            #expect(try cli.run(["events", "--count", "2"]).lines.count == 2)

            let json = try cli.run(["events", "--json"]).jsonLines()
            #expect(json.count == all.lines.count)
            let firstID = try #require(json.first?["stream_id"] as? String)
            #expect(all.lines.first?.hasPrefix(firstID) == true)
            let since = try cli.run(["events", "--since", firstID, "--json"]).jsonLines()
            #expect(since.count == json.count - 1)
            #expect(try cli.run(["events", "--since", "yesterday"]).status == 2)
        }

        @Test("events --follow prints new events, survives a Redis restart and resumes after the last one")
        func followAcrossRestart() throws {
            let h = try Harness()
            try h.startDaemon()
            let cli = CLI(redisURL: h.server.url)
            let follow = try cli.start(["events", "--follow", "--json", "--type", "coordination.completed"])
            defer { follow.stop() }
            func seen() -> [String] {
                follow.output.split(separator: "\n").compactMap { try? Harness.object(Array($0.utf8))["customer_id"] as? String }
            }
            try h.push(Wire.coordinate("f-1", customer: "before", replyTo: "test:f", [Wire.recommendation("r1")]))
            try h.wait("the first event") { seen() == ["before"] }

            try h.server.restart()
            let redis = try h.server.client()
            defer { redis.close() }
            try h.wait("the daemon to be back") {
                (try? HealthCheck.liveWorkers(redis, keys: h.keys).count) == 1
            }
            _ = try redis.send("LPUSH", "coord:requests", Wire.coordinate("f-2", customer: "after", replyTo: "test:f", [Wire.recommendation("r2")]))
            try h.wait("the event after the restart", timeout: 30) { seen().count == 2 }
            #expect(seen() == ["before", "after"], "\(follow.output)\n\(follow.errors)")
            // Standard error is read apart from standard output: its note, written before the
            // event, may reach the test after it.
            try h.wait("the note on standard error") { follow.errors.contains("resuming after") }
            #expect(follow.errors.contains("Redis unavailable"))
        }

        @Test("dead list/show, requeue puts the exact bytes back (refusing truncated and forged entries), purge")
        func dead() throws {
            let h = try Harness()
            // One request loop, and the approval pushed only after both requests are dead: the
            // listing below is by position, and separate loops would append in any order.
            try h.startDaemon { $0.workers = 1 }
            let cli = CLI(redisURL: h.server.url)
            #expect(try cli.run(["dead"]).out == "no dead letters\n")
            let binary: [UInt8] = [0xFF, 0xFE, 0x7B, 0x00, 0x80]
            try h.push("{\"kind\":\"coordinate\",\"recommendations\":7}")
            try h.push(bytes: binary)
            try h.wait("two dead letters") { try h.length(h.keys.dead) == 2 }
            try h.push("x{", to: "coord:approvals")
            try h.wait("three dead letters") { try h.length(h.keys.dead) == 3 }
            h.stopDaemons()

            let list = try cli.run(["dead"])
            #expect(list.status == 0, "\(list)")
            expectReadable(list)
            #expect(list.lines.count == 4)
            #expect(list.lines.first?.hasPrefix("N  AGE") == true)
            #expect(list.lines[1].hasPrefix("0  ") && list.lines[1].contains("requests") && list.lines[1].contains("invalid_request"))
            #expect(list.lines[2].contains("invalid_json") && list.lines[2].contains("      5  "), "\(list.out)")
            #expect(list.lines[3].contains("approvals"))
            #expect(try cli.run(["dead", "list", "--json"]).jsonLines().map { $0["index"] as? Int } == [0, 1, 2])

            let show = try cli.run(["dead", "show", "1"])
            #expect(show.status == 0)
            #expect(show.out.contains("queue     coord:requests"))
            // The message decoded from raw_base64, escaped: bytes that are not UTF-8 as \xNN.
            #expect(show.out.contains("raw (from raw_base64: not UTF-8"), "\(show.out)")
            #expect(show.out.contains("\\xff\\xfe{\\u0000\\x80"), "\(show.out)")
            #expect(try cli.run(["dead", "show", "9"]).status == 1)

            // Exact bytes back on the queue, and the entry off the dead list.
            let one = try cli.run(["dead", "requeue", "1"])
            #expect(one.status == 0, "\(one)")
            #expect(one.out == "requeued dead letter 1 onto coord:requests (5 bytes)\n")
            #expect(try h.redis.send("LRANGE", "coord:requests", 0, -1).array?.compactMap(\.bytes) == [binary])
            #expect(try h.length(h.keys.dead) == 2)

            // A truncated entry and one naming a foreign queue are refused, and stay.
            _ = try h.redis.send("RPUSH", h.keys.dead, Wire.json([
                "queue": "coord:requests", "raw": "{\"kind\":", "truncated": true, "raw_bytes": 2_000_000,
                "raw_sha256": String(repeating: "a", count: 64), "error": ["code": "too_large", "message": "big"], "at": "2026-11-24T10:00:00.000Z",
            ]))
            _ = try h.redis.send("RPUSH", h.keys.dead, Wire.json([
                "queue": "victim:list", "raw": "evil", "error": ["code": "invalid_json", "message": "x"], "at": "2026-11-24T10:00:00.000Z",
            ]))
            let truncated = try cli.run(["dead", "requeue", "2"])
            #expect(truncated.status == 1)
            #expect(truncated.err.contains("truncated: only 8 of its 2000000 bytes were kept"), "\(truncated)")
            let all = try cli.run(["dead", "requeue", "--all"])
            #expect(all.status == 1, "\(all)")
            #expect(all.out.contains("requeued 2, refused 2"))
            #expect(all.err.contains("is not one of coord:requests"))
            #expect(try h.length("victim:list") == 0)
            #expect(try h.length(h.keys.dead) == 2)
            #expect(try h.length("coord:approvals") == 1)
            #expect(try h.redis.send("LINDEX", "coord:approvals", 0).bytes == Array("x{".utf8))
            #expect(try cli.run(["dead", "requeue"]).status == 2)

            let purge = try cli.run(["dead", "purge"])
            #expect(purge.out == "purged 2 dead letters\n")
            #expect(try h.length(h.keys.dead) == 0)
        }
    }
}
