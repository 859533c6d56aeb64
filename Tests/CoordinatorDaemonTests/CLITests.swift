import CoordinatorDaemon
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md section 8 through the real binary: flags, `COORD_*` variables, and flags
    /// winning over the environment.
    @Suite("The command line of coordinatord run", .sharesMachine)
    struct CLITests {
        /// Pushes a coordinate request on `prefix`'s queue and returns its reply.
        func ask(_ h: Harness, prefix: String = "coord", id: String, _ recommendations: [[String: Any]],
                 timeout: Double = 30) throws -> [String: Any] {
            try h.push(Wire.coordinate(id, customer: id, replyTo: "test:cli:\(id)", recommendations), to: "\(prefix):requests")
            return try h.reply(on: "test:cli:\(id)", timeout: timeout)
        }

        @Test("--prefix and COORD_PREFIX: every key under the prefix; the flag wins over the variable")
        func prefix() throws {
            let h = try Harness()
            _ = try h.launch(["run", "--sim-speed", "0"], environment: ["COORD_PREFIX": "envp"])
            #expect((try ask(h, prefix: "envp", id: "e1", [Wire.recommendation("r", resources: ["i-1"])]))["ok"] as? Bool == true)
            _ = try h.launch(["run", "--sim-speed", "0", "--prefix", "flagp"], environment: ["COORD_PREFIX": "envp2"])
            #expect((try ask(h, prefix: "flagp", id: "f1", [Wire.recommendation("r", resources: ["i-1"])]))["ok"] as? Bool == true)
            // Nobody serves envp2 (the flag won) nor coord.
            try h.push(Wire.coordinate("lost", replyTo: "test:cli:lost", [Wire.recommendation("r")]), to: "envp2:requests")
            try h.push(Wire.coordinate("lost2", replyTo: "test:cli:lost2", [Wire.recommendation("r")]), to: "coord:requests")
            try h.wait("heartbeats under both served prefixes") {
                try !h.scanKeys("envp:workers:*").isEmpty && !h.scanKeys("flagp:workers:*").isEmpty
            }
            #expect(try h.length("envp2:requests") == 1)
            #expect(try h.length("coord:requests") == 1)
            let stray = try h.scanKeys("*").filter {
                !$0.hasPrefix("envp:") && !$0.hasPrefix("flagp:") && !$0.hasPrefix("test:") && $0 != "envp2:requests" && $0 != "coord:requests"
            }
            #expect(stray.isEmpty, "\(stray)")
            #expect(try h.hlen(Keys(prefix: "envp").active(customer: "e1")) == 1)
            #expect(try h.hlen(Keys(prefix: "flagp").active(customer: "f1")) == 1)
        }

        @Test("COORD_* variables set the daemon up; a flag wins over its variable")
        func environment() throws {
            let h = try Harness()
            // Variables alone: notify policy, at most 2 recommendations, a 90 s reply TTL.
            _ = try h.launch(["run", "--sim-speed", "0"], environment: [
                "COORD_MEDIUM_POLICY": "notify", "COORD_MAX_RECOMMENDATIONS": "2", "COORD_REPLY_TTL": "90",
                "COORD_PREFIX": "env",
            ])
            let medium = try ask(h, prefix: "env", id: "m1", [Wire.recommendation("m", risk: "medium", resources: ["i-1"])])
            #expect((medium["result"] as? [String: Any])?["approvals_required"] as? Int == 0)
            let many = try ask(h, prefix: "env", id: "m2", (1...3).map { Wire.recommendation("r\($0)", resources: ["i-\($0)"]) })
            #expect(Harness.code(many) == "too_large")
            try h.push(Wire.coordinate("ttl", replyTo: "test:cli:ttl", [Wire.recommendation("r")]), to: "env:requests")
            try h.wait("the reply") { try h.length("test:cli:ttl") == 1 }
            let ttl = try #require(try h.redis.send("TTL", "test:cli:ttl").integer)
            #expect(ttl > 0 && ttl <= 90)

            // The same variables, overridden by flags.
            _ = try h.launch(["run", "--sim-speed", "0", "--medium-policy", "approve", "--max-recommendations", "5",
                              "--reply-ttl", "4000", "--prefix", "flag"], environment: [
                "COORD_MEDIUM_POLICY": "notify", "COORD_MAX_RECOMMENDATIONS": "2", "COORD_REPLY_TTL": "90",
                "COORD_PREFIX": "env",
            ])
            let approved = try ask(h, prefix: "flag", id: "f1", [Wire.recommendation("m", risk: "medium", resources: ["i-1"])])
            #expect((approved["result"] as? [String: Any])?["approvals_required"] as? Int == 1)
            let three = try ask(h, prefix: "flag", id: "f2", (1...3).map { Wire.recommendation("r\($0)", resources: ["i-\($0)"]) })
            #expect(three["ok"] as? Bool == true)
            try h.push(Wire.coordinate("ttl2", replyTo: "test:cli:ttl2", [Wire.recommendation("r")]), to: "flag:requests")
            try h.wait("the reply") { try h.length("test:cli:ttl2") == 1 }
            #expect(try #require(try h.redis.send("TTL", "test:cli:ttl2").integer) > 90)
        }

        @Test("flags through the CLI: --approvers, --approval-expiry, --max-message-bytes")
        func otherFlags() throws {
            let h = try Harness()
            _ = try h.launch(["run", "--sim-speed", "0", "--approvers", "alice@x,bob@x", "--approval-expiry",
                              "low=7d,medium=1s,high=24h,critical=4h", "--max-message-bytes", "2000"])
            let reply = try ask(h, id: "a1", [Wire.recommendation("h", risk: "high", resources: ["i-1"])])
            let approvalID = try #require(((reply["result"] as? [String: Any])?["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            try h.push(Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": "mallory@x", "reply_to": "test:cli:d"]),
                       to: h.keys.approvals)
            #expect(Harness.code(try h.reply(on: "test:cli:d", timeout: 30)) == "forbidden")
            try h.push(Wire.json(["approval_id": approvalID, "decision": "approve", "user_id": "bob@x", "reply_to": "test:cli:d"]),
                       to: h.keys.approvals)
            #expect((try h.reply(on: "test:cli:d", timeout: 30))["ok"] as? Bool == true)
            // medium=1s: a medium approval expires by itself.
            _ = try ask(h, id: "a2", [Wire.recommendation("m", risk: "medium", resources: ["i-2"])])
            try h.waitForEvent("approval.expired", timeout: 30) { $0["type"] as? String == "approval.expired" }
            let big = try ask(h, id: "a3", [Wire.recommendation("r", parameters: ["pad": String(repeating: "x", count: 3000)])])
            #expect(Harness.code(big) == "too_large")
        }

        @Test("a bad flag or variable stops start-up with a message and a non-zero status")
        func badValues() throws {
            let h = try Harness()
            #expect(try h.runToEnd(["run", "--medium-policy", "sometimes"]).status != 0)
            #expect(try h.runToEnd(["run"], environment: ["COORD_WORKERS": "many"]).status != 0)
            #expect(try h.runToEnd(["run"], environment: ["COORD_WORKERS": "0"]).status != 0)
        }
    }
}
