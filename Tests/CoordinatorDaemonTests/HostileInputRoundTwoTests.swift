import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// Hostile values and sizes (PROTOCOL.md 2.2, 2.5, 5, 6) against a real redis-server and
    /// the daemon (in this process, and the built binary where its memory is measured).
    @Suite("Hostile input, round two", .sharesMachine)
    struct HostileInputRoundTwoTests {
        func code(_ object: [String: Any]) -> String? { (object["error"] as? [String: Any])?["code"] as? String }
        func message(_ object: [String: Any]) -> String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }

        /// Replies on `list` until `count` have come, by request_id.
        func replies(_ h: Harness, on list: String, count: Int, timeout: Double = 30) throws -> [String: [String: Any]] {
            var byID: [String: [String: Any]] = [:]
            for _ in 0..<count {
                let reply = try h.reply(on: list, timeout: timeout)
                byID[reply["request_id"] as? String ?? ""] = reply
            }
            return byID
        }

        @Test("attack 8: DROP_DATABASE, drop-database, 'drop_database ' and drop_database+ZWSP are invalid_request, never a low-risk action")
        func actionSpellings() throws {
            let h = try Harness()
            let fixture = try TrustFixture([], riskFloor: ["drop_database": "critical"])
            defer { fixture.remove() }
            try h.startDaemon { $0.trustFile = fixture.path }
            let spellings = ["DROP_DATABASE", "drop-database", "drop_database ", "drop_database\u{200B}", "Drop_Database",
                             String(repeating: "d", count: 65)]
            for (n, action) in spellings.enumerated() {
                try h.push(Wire.coordinate("spell-\(n)", customer: "cust-1", replyTo: "test:spell", executeNow: true,
                                           [Wire.recommendation("drop-\(n)", agent: "prod-db-agent", action: action, risk: "low", resources: ["db-1"])]))
            }
            let byID = try replies(h, on: "test:spell", count: spellings.count)
            for (n, action) in spellings.enumerated() {
                let reply = try #require(byID["spell-\(n)"], "\(action.debugDescription)")
                #expect(reply["ok"] as? Bool == false, "\(action.debugDescription) was accepted: \(reply)")
                #expect(code(reply) == "invalid_request", "\(action.debugDescription)")
                #expect(message(reply).hasPrefix("recommendations[0].action:"), "\(message(reply))")
            }
            // Nothing of theirs exists: no plan, no step, no active recommendation.
            #expect(try h.scanKeys("coord:plan:*").isEmpty)
            #expect(try h.hlen("coord:{cust-1}:active") == 0)
            // The one spelling there is still gets its floor.
            try h.push(Wire.coordinate("spell-ok", customer: "cust-1", replyTo: "test:spell", executeNow: true,
                                       [Wire.recommendation("drop-ok", agent: "prod-db-agent", action: "drop_database", risk: "low", resources: ["db-1"])]))
            let ok = try h.reply(on: "test:spell")
            let result = try #require(ok["result"] as? [String: Any], "\(ok)")
            #expect((result["approvals"] as? [[String: Any]])?.first?["risk_level"] as? String == "critical")
        }

        @Test("attack 3: 100,000 affected_resources are too_large and make no key; 513-byte resources are invalid_request")
        func affectedResources() throws {
            let h = try Harness()
            try h.startDaemon()
            let keysBefore = try h.redis.send("DBSIZE").integer ?? 0
            let many = (0..<100_000).map { "r\($0)" }
            try h.push(Wire.coordinate("many", customer: "big", replyTo: "test:res", [Wire.recommendation("huge", resources: many)]))
            let refused = try h.reply(on: "test:res", timeout: 60)
            #expect(code(refused) == "too_large", "\(message(refused))")
            #expect(message(refused).hasPrefix("recommendations[0].affected_resources:"), "\(message(refused))")
            #expect(try h.scanKeys("coord:{big}*").isEmpty)
            // The reply list, the dead letter and a heartbeat or in-flight list at most: not 200,000 keys.
            #expect((try h.redis.send("DBSIZE").integer ?? 0) - keysBefore < 10)

            let cases: [(String, [[String: Any]], String, String)] = [
                ("r1001", [Wire.recommendation("a", resources: (0..<1001).map { "x\($0)" })], "too_large", "recommendations[0].affected_resources:"),
                ("r11k", (0..<11).map { k in Wire.recommendation("a\(k)", resources: (0..<1000).map { "x\(k)-\($0)" }) },
                 "too_large", "recommendations:"),
                ("r513", [Wire.recommendation("a", resources: ["ok", String(repeating: "a", count: 513)])], "invalid_request",
                 "recommendations[0].affected_resources[1]:"),
                ("rspace", [Wire.recommendation("a", resources: ["has space"])], "invalid_request", "recommendations[0].affected_resources[0]:"),
            ]
            for (id, recs, _, _) in cases { try h.push(Wire.coordinate(id, customer: "c2", replyTo: "test:res", recs)) }
            let byID = try replies(h, on: "test:res", count: cases.count, timeout: 60)
            for (id, _, expected, prefix) in cases {
                let reply = try #require(byID[id], "\(id)")
                #expect(code(reply) == expected, "\(id): \(reply)")
                #expect(message(reply).hasPrefix(prefix), "\(id): \(message(reply))")
            }
            #expect(try h.scanKeys("coord:{c2}*").isEmpty)
            // At the limits: 1,000 resources in one recommendation, and resources of 512 bytes.
            let arn = { (k: Int) in String(("arn:aws:ec2:eu-west-1:123456789012:instance/\(k)-" + String(repeating: "i", count: 512)).prefix(512)) }
            try h.push(Wire.coordinate("edge", customer: "c3", replyTo: "test:res",
                                       [Wire.recommendation("a", resources: (0..<1000).map { "x\($0)" }),
                                        Wire.recommendation("b", resources: (0..<100).map(arn))]))
            let edge = try h.reply(on: "test:res", timeout: 60)
            #expect(edge["ok"] as? Bool == true, "\(message(edge))")
        }

        @Test("--max-resources and COORD_MAX_RESOURCES set the limit per recommendation, in the built binary")
        func maxResourcesFlag() throws {
            for (arguments, environment) in [(["--max-resources", "3"], [String: String]()), ([], ["COORD_MAX_RESOURCES": "3"])] {
                let h = try Harness()
                _ = try h.launch(["run", "--sim-speed", "0"] + arguments, environment: environment)
                try h.push(Wire.coordinate("three", customer: "c", replyTo: "test:flag", [Wire.recommendation("a", resources: ["r1", "r2", "r3"])]))
                #expect(try h.reply(on: "test:flag", timeout: 30)["ok"] as? Bool == true)
                try h.push(Wire.coordinate("four", customer: "c", replyTo: "test:flag", [Wire.recommendation("b", resources: ["r1", "r2", "r3", "r4"])]))
                let four = try h.reply(on: "test:flag", timeout: 30)
                #expect(code(four) == "too_large", "\(arguments) \(environment): \(four)")
                #expect(message(four).contains("--max-resources (3)"), "\(message(four))")
            }
        }

        /// A dead letter's bound (section 6, v3) with the default `--dead-letter-raw-max`.
        static let deadLetterBound = 65_536 * 4 / 3 + 4096

        @Test("attack 4: a 900 KB type, risk_level, created_at or kind gives an error message of at most 1 KiB, in the reply and the dead letter")
        func boundedErrorMessages() throws {
            let h = try Harness()
            try h.startDaemon()
            let huge = String(repeating: "A", count: 900_000)
            var withType = Wire.recommendation("t")
            withType["type"] = huge
            var withRisk = Wire.recommendation("t")
            withRisk["risk_level"] = huge
            var withDate = Wire.recommendation("t")
            withDate["created_at"] = huge
            try h.push(Wire.coordinate("type", replyTo: "test:big", [withType]))
            try h.push(Wire.coordinate("risk", replyTo: "test:big", [withRisk]))
            try h.push(Wire.coordinate("date", replyTo: "test:big", [withDate]))
            try h.push(Wire.json(["kind": huge, "request_id": "kind", "reply_to": "test:big"]))
            let byID = try replies(h, on: "test:big", count: 4)
            for id in ["type", "risk", "date", "kind"] {
                let reply = try #require(byID[id], "\(id)")
                #expect(code(reply) == "invalid_request", "\(id)")
                #expect(message(reply).utf8.count <= 1024, "\(id): an error message of \(message(reply).utf8.count) bytes")
                #expect(message(reply).contains("AAAA…"), "\(id): \(message(reply).prefix(300))")
            }
            try h.wait("4 dead letters") { try h.length("coord:dead") >= 4 }
            let entries = try (h.redis.send("LRANGE", "coord:dead", 0, -1).array ?? []).compactMap(\.bytes)
            #expect(entries.count == 4)
            for entry in entries {
                #expect(entry.count <= Self.deadLetterBound, "a dead letter of \(entry.count) bytes")
                #expect(message(try Harness.object(entry)).utf8.count <= 1024)
            }
        }

        @Test("attack 4: a 900 KB alg or kid in a JWS header gives an error of at most 1 KiB")
        func boundedJWSErrors() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try h.startDaemon { $0.trustFile = fixture.path }
            func base64url(_ bytes: [UInt8]) -> String {
                Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                    .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            }
            let huge = String(repeating: "B", count: 900_000)
            let payload = base64url(Array(Wire.coordinate("jws", replyTo: "test:jws", [Wire.recommendation("j")]).utf8))
            let signature = base64url([UInt8](repeating: 7, count: 64))
            for header in [["alg": huge, "kid": "cost-agent-1"], ["alg": "EdDSA", "kid": huge]] {
                let encoded = base64url(Array(Wire.json(header).utf8))
                try h.push("\(encoded).\(payload).\(signature)")
            }
            try h.wait("2 dead letters") { try h.length("coord:dead") >= 2 }
            let entries = try (h.redis.send("LRANGE", "coord:dead", 0, -1).array ?? []).compactMap(\.bytes)
            #expect(entries.count == 2)
            for entry in entries {
                let letter = try Harness.object(entry)
                #expect(entry.count <= Self.deadLetterBound, "a dead letter of \(entry.count) bytes")
                #expect(message(letter).utf8.count <= 1024, "an error message of \(message(letter).utf8.count) bytes")
            }
        }

        /// A plan of `agent` with the agents executor, and its first step as dispatched.
        func startPlan(_ h: Harness, customer: String, agent: String) throws -> (planID: String, step: [String: Any]) {
            try h.push(Wire.coordinate("plan-\(customer)", customer: customer, replyTo: "test:plan-\(customer)", executeNow: true,
                                       [Wire.recommendation("spot", agent: agent, action: "migrate_to_spot", resources: ["i-1"])]))
            let result = try #require((try h.reply(on: "test:plan-\(customer)"))["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            let step = try h.reply(on: h.keys.agentSteps(agent), timeout: 20)
            return (planID, step)
        }

        func answer(_ step: [String: Any], result: [String: Any], rollbackData: [String: Any] = [:]) -> String {
            if let blob = result["blob"] as? String, blob.utf8.count > 1_048_576 {
                // As an agent writes it, its identity first (an oversized result is read only
                // up to --max-message-bytes).
                let identity = ["plan_id", "step_id", "attempt"].map { "\"\($0)\":\"\(step[$0] as? String ?? "")\"" }
                return "{" + identity.joined(separator: ",") + ",\"rollback\":false,\"ok\":true,\"result\":{\"blob\":\"\(blob)\"}}"
            }
            var object: [String: Any] = ["plan_id": step["plan_id"] ?? "", "step_id": step["step_id"] ?? "", "ok": true,
                                         "rollback": step["rollback"] ?? false, "result": result]
            if let attempt = step["attempt"] { object["attempt"] = attempt }
            if !rollbackData.isEmpty { object["rollback_data"] = rollbackData }
            return Wire.json(object)
        }

        @Test("attack 7: a 6.6 MB step result, or a result or rollback_data over 64 KiB, is too_large and fails its step at once")
        func boundedStepResults() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 120 }
            let cases: [(customer: String, result: [String: Any], rollback: [String: Any])] = [
                ("huge", ["blob": String(repeating: "R", count: 6_600_000)], [:]),
                ("result", ["blob": String(repeating: "R", count: 70_000)], [:]),
                ("rollback", [:], ["blob": String(repeating: "R", count: 70_000)]),
            ]
            for (n, c) in cases.enumerated() {
                let (planID, step) = try startPlan(h, customer: c.customer, agent: "agent-\(n)")
                try h.push(answer(step, result: c.result, rollbackData: c.rollback), to: h.keys.stepResults)
                let plan = try h.waitForPlan(planID, anyOf: ["failed", "rolled_back"], timeout: 30)
                let first = try #require((plan["steps"] as? [[String: Any]])?.first, "\(c.customer): \(plan)")
                #expect(first["status"] as? String == "failed", "\(c.customer): \(first)")
                #expect((first["error"] as? String)?.hasPrefix("too_large") == true, "\(c.customer): \(first)")
                let stored = try #require(try h.redis.send("GET", h.keys.plan(planID)).bytes)
                #expect(stored.count < 16_384, "\(c.customer): a plan of \(stored.count) bytes")
                // The step is not dispatched again, and the next step never is.
                #expect(try h.length(h.keys.agentSteps("agent-\(n)")) == 0)
            }
            let letters = try h.deadLetters().filter { $0["queue"] as? String == h.keys.stepResults }
            #expect(letters.count == cases.count)
            #expect(letters.allSatisfy { code($0) == "too_large" }, "\(letters.map(message))")
            let entries = try (h.redis.send("LRANGE", "coord:dead", 0, -1).array ?? []).compactMap(\.bytes)
            #expect(entries.allSatisfy { $0.count <= Self.deadLetterBound })
            // No event carries the result.
            let events = try h.redis.send("XRANGE", h.keys.eventStream, "-", "+").array ?? []
            for event in events {
                let size = (event.array?.last?.array ?? []).compactMap(\.bytes).reduce(0) { $0 + $1.count }
                #expect(size < 16_384, "an event of \(size) bytes")
            }
            #expect(try h.length(h.keys.stepResults) == 0)
        }

        @Test("attack 7: a 6.6 MB step result whose identity stands past its first --max-message-bytes is refused unread; its step fails at its timeout")
        func oversizedIdentityPastTheCut() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 3 }
            let (planID, step) = try startPlan(h, customer: "cut", agent: "agent-cut")
            // Sorted keys: step_id and rollback come after the 6.6 MB result.
            let object: [String: Any] = ["plan_id": planID, "step_id": step["step_id"] ?? "", "attempt": step["attempt"] ?? "",
                                         "ok": true, "rollback": false, "result": ["blob": String(repeating: "R", count: 6_600_000)]]
            try h.push(Wire.json(object), to: h.keys.stepResults)
            try h.wait("the result dead-lettered") { try h.length("coord:dead") == 1 }
            let letter = try #require(try h.deadLetters().first)
            #expect(code(letter) == "too_large")
            #expect(letter["raw_bytes"] as? Int ?? 0 > 6_600_000)
            #expect(letter["truncated"] as? Bool == true)
            let plan = try h.waitForPlan(planID, anyOf: ["failed", "rolled_back"], timeout: 30)
            let error = try #require((plan["steps"] as? [[String: Any]])?.first?["error"] as? String)
            #expect(error.contains("--step-timeout"), "\(error)")
            #expect(try h.length(h.keys.stepResults) == 0)
            #expect(try h.inflightCount() == 0)
        }

        /// Peak resident memory of a process (VmHWM), in bytes.
        static func peakRSS(_ pid: Int32) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
            let kib = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
            return kib * 1024
        }

        @Test("attack 1: three requests of 8,000 customer-wide recommendations with distinct actions stay under 150 MB; one more is answered in 100 ms")
        func distinctActions() throws {
            let h = try Harness()
            let daemon = try h.launch(["run", "--sim-speed", "0", "--workers", "1", "--max-message-bytes", "16777216"])
            try h.push(Wire.coordinate("ready", customer: "other", replyTo: "test:ready", [Wire.recommendation("r")]))
            _ = try h.reply(on: "test:ready", timeout: 60)
            var action = 0
            for request in 0..<3 {
                let recs: [[String: Any]] = (0..<8000).map { k in
                    action += 1
                    return Wire.recommendation("wide-\(request)-\(k)", action: "made_up_action_\(action)", risk: "high")
                }
                try h.push(Wire.coordinate("wide-\(request)", customer: "victim", replyTo: "test:wide", recs))
                let reply = try h.reply(on: "test:wide", timeout: 120)
                #expect(reply["ok"] as? Bool == true, "\(message(reply))")
            }
            #expect(try h.hlen("coord:{victim}:active") == 24_000)
            var best = Double.infinity
            for attempt in 0..<3 {
                let started = Date()
                try h.push(Wire.coordinate("one-\(attempt)", customer: "victim", replyTo: "test:one",
                                           [Wire.recommendation("one-\(attempt)", action: "scale_up", risk: "high")]))
                let reply = try h.reply(on: "test:one", timeout: 60)
                best = min(best, Date().timeIntervalSince(started))
                #expect(reply["ok"] as? Bool == true, "\(message(reply))")
            }
            #expect(best < 0.1, "a one-recommendation request took \(Int(best * 1000)) ms")
            let peak = try Self.peakRSS(daemon.processIdentifier)
            print("distinct actions: daemon peak RSS (VmHWM) \(peak >> 20) MiB, one-recommendation request \(String(format: "%.1f", best * 1000)) ms")
            #expect(peak < 150 << 20, "peak RSS \(peak >> 20) MiB")
        }
    }
}
