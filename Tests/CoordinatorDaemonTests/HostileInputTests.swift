import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Hostile messages against a real Redis: reply_to at the daemon's own keys,
    /// identifiers and sizes, JSON that is not an object, and dead letters that stay bounded.
    @Suite("Hostile input", .sharesMachine)
    struct HostileInputTests {
        /// Waits until the dead-letter list holds `count` entries, then returns them.
        func deadLetters(_ h: Harness, count: Int) throws -> [[String: Any]] {
            try h.wait("\(count) dead letters") { try h.length("coord:dead") >= count }
            return try h.deadLetters()
        }

        /// A valid request whose reply shows everything pushed before it was taken.
        func barrier(_ h: Harness, _ id: String) throws {
            try h.push(Wire.coordinate(id, customer: "barrier-\(id)", replyTo: "test:barrier", [Wire.recommendation("b")]))
            #expect((try h.reply(on: "test:barrier"))["ok"] as? Bool == true)
        }

        func code(_ letter: [String: Any]) -> String? { (letter["error"] as? [String: Any])?["code"] as? String }
        func message(_ letter: [String: Any]) -> String { (letter["error"] as? [String: Any])?["message"] as? String ?? "" }

        @Test("reply_to at the daemon's own keys changes nothing there: no reply, no TTL, refused into coord:dead")
        func replyToOwnKeys() throws {
            let h = try Harness()
            try h.startDaemon { $0.workers = 1 }
            // coord:dead exists before, so a TTL on it would show.
            try h.push("not json at all")
            _ = try deadLetters(h, count: 1)
            try h.push(Wire.coordinate("seed-version", customer: "victim", replyTo: "test:victim", [Wire.recommendation("v")]))
            _ = try h.reply(on: "test:victim")
            let targets = ["coord:dead", "coord:requests", "coord:{victim}:wide", "coord:{victim}:active", "coord", "coord:inflight:x"]
            for (n, target) in targets.enumerated() {
                try h.push(Wire.json(["kind": "get_plan", "plan_id": "x", "request_id": "own-\(n)", "reply_to": target]))
                try h.push(Wire.coordinate("own-c-\(n)", customer: "victim", replyTo: target, [Wire.recommendation("w\(n)")]))
            }
            try h.push("approve ap-1 alice", to: "coord:approvals")  // plain text: no reply_to
            try h.push(Wire.json(["approval_id": "ap-1", "decision": "approve", "user_id": "alice", "reply_to": "coord:dead"]), to: "coord:approvals")
            try barrier(h, "b1")
            let dead = try deadLetters(h, count: 1 + 2 * targets.count + 1)
            #expect(dead.count == 1 + 2 * targets.count + 1, "only the refused messages are dead letters: \(dead.map(message))")
            let refused = dead.filter { message($0).hasPrefix("reply_to:") }
            #expect(refused.count == 2 * targets.count + 1)
            #expect(refused.allSatisfy { code($0) == "invalid_request" })
            // Nothing became a reply anywhere: no entry of coord:dead is a reply, the version is
            // still a counter, and none of the daemon's keys has a TTL.
            #expect(!dead.contains { $0["ok"] != nil })
            #expect(try h.redis.send("TYPE", "coord:{victim}:wide").string == "set")
            #expect(try h.redis.send("HLEN", "coord:{victim}:active").integer == 1)
            for key in ["coord:dead", "coord:{victim}:wide", "coord:{victim}:active"] {
                #expect(try h.redis.send("TTL", key).integer == -1, "\(key)")
            }
            #expect(try h.redis.send("TYPE", "coord").string == "none")
            #expect(try h.redis.send("EXISTS", "coord:inflight:x").integer == 0)
            #expect(try h.length("coord:requests") == 0)
        }

        @Test("reply_to over 256 bytes, with spaces or control bytes, non-ASCII, or outside --reply-prefix: no reply, refused")
        func replyToRules() throws {
            let h = try Harness()
            try h.startDaemon { $0.replyPrefix = "replies:" }
            let bad = ["replies:" + String(repeating: "r", count: 249), "replies:a b", "replies:a\tb", "replies:réponse", "elsewhere:x", "test:barrier"]
            for (n, target) in bad.enumerated() {
                try h.push(Wire.json(["kind": "get_plan", "plan_id": "x", "request_id": "rt-\(n)", "reply_to": target]))
            }
            try h.push(Wire.json(["approval_id": "ap-1", "decision": "approve", "user_id": "u", "reply_to": "elsewhere:y"]), to: "coord:approvals")
            try h.push(Wire.json(["kind": "get_plan", "plan_id": "x", "request_id": "rt-ok", "reply_to": "replies:" + String(repeating: "r", count: 248)]))
            let good = try h.reply(on: "replies:" + String(repeating: "r", count: 248))
            #expect((good["error"] as? [String: Any])?["code"] as? String == "not_found")
            let dead = try deadLetters(h, count: bad.count + 1)
            #expect(dead.count == bad.count + 1)
            #expect(dead.allSatisfy { code($0) == "invalid_request" && message($0).hasPrefix("reply_to:") })
            #expect(dead.filter { $0["queue"] as? String == "coord:approvals" }.count == 1)
            for target in bad + ["elsewhere:y"] { #expect(try h.redis.send("EXISTS", target).integer == 0, "\(target)") }
        }

        @Test("identifiers: bad bytes, over 128 bytes, and a request_id of 129 bytes of multi-byte characters")
        func identifiers() throws {
            let h = try Harness()
            try h.startDaemon()
            let euro = String(repeating: "€", count: 43)  // 43 characters, 129 bytes
            let requestIDs = ["has space", "star*", "brace{x}", "q?", "b[1]", "back\\slash", "quote\"", String(repeating: "i", count: 129), euro]
            for id in requestIDs {
                try h.push(Wire.coordinate(id, replyTo: "test:ids", [Wire.recommendation("r1")]))
            }
            var echoed: [String] = []
            for _ in requestIDs {
                let reply = try h.reply(on: "test:ids")
                #expect(reply["ok"] as? Bool == false)
                let error = try #require(reply["error"] as? [String: Any])
                #expect(error["code"] as? String == "invalid_request")
                #expect((error["message"] as? String)?.hasPrefix("request_id:") == true, "\(error)")
                echoed.append(reply["request_id"] as? String ?? "")
            }
            // Echoed as sent, whatever it was refused for.
            #expect(Set(echoed) == Set(requestIDs))

            let fields: [(String, String)] = [
                (Wire.coordinate("f1", customer: "cust x", replyTo: "test:f", [Wire.recommendation("r1")]), "customer_id"),
                (Wire.coordinate("f2", replyTo: "test:f", [Wire.recommendation("r*1")]), "recommendations[0].id"),
                (Wire.coordinate("f3", replyTo: "test:f", [Wire.recommendation("r1", agent: String(repeating: "a", count: 129))]), "recommendations[0].agent_id"),
                (Wire.coordinate("f4", replyTo: "test:f", [Wire.recommendation("r1", dependencies: ["{r2}"])]), "recommendations[0].dependencies[0]"),
                (Wire.json(["kind": "get_plan", "request_id": "f5", "plan_id": "p*", "reply_to": "test:f"]), "plan_id"),
                (Wire.json(["kind": "execute_plan", "request_id": "f6", "plan_id": "p x", "reply_to": "test:f"]), "plan_id"),
                (Wire.json(["kind": "get_approval", "request_id": "f7", "approval_id": "a\"b", "reply_to": "test:f"]), "approval_id"),
                (Wire.json(["kind": "list_approvals", "request_id": "f8", "customer_id": "c?", "reply_to": "test:f"]), "customer_id"),
            ]
            for (message, _) in fields { try h.push(message) }
            var byID: [String: [String: Any]] = [:]
            for _ in fields {
                let reply = try h.reply(on: "test:f")
                byID[reply["request_id"] as? String ?? ""] = reply["error"] as? [String: Any]
            }
            for (n, (_, path)) in fields.enumerated() {
                let error = try #require(byID["f\(n + 1)"], "f\(n + 1)")
                #expect(error["code"] as? String == "invalid_request")
                #expect((error["message"] as? String)?.hasPrefix(path + ":") == true, "\(error)")
            }
            // A 128-byte request_id is one.
            let longest = String(repeating: "k", count: 128)
            try h.push(Wire.coordinate(longest, replyTo: "test:ok", [Wire.recommendation("r1")]))
            let ok = try h.reply(on: "test:ok")
            #expect(ok["ok"] as? Bool == true)
            #expect(ok["request_id"] as? String == longest)
            #expect(try h.redis.send("KEYS", "coord:*\\**").array?.isEmpty == true)
        }

        @Test("free text over 4 KiB and parameters or metadata over 64 KiB are too_large, by JSON path")
        func sizeLimits() throws {
            let h = try Harness()
            try h.startDaemon()
            var rec = Wire.recommendation("t1")
            let cases: [(String, Any)] = [
                ("title", String(repeating: "t", count: 4097)),
                ("description", String(repeating: "é", count: 2049)),
                ("estimated_impact", String(repeating: "i", count: 5000)),
                ("parameters", ["blob": String(repeating: "p", count: 70_000)]),
                ("metadata", ["blob": String(repeating: "m", count: 70_000)]),
            ]
            for (n, (field, value)) in cases.enumerated() {
                rec = Wire.recommendation("t1")
                rec[field] = value
                try h.push(Wire.coordinate("size-\(n)", replyTo: "test:size", [rec]))
            }
            var byID: [String: [String: Any]] = [:]
            for _ in cases {
                let reply = try h.reply(on: "test:size")
                byID[reply["request_id"] as? String ?? ""] = reply["error"] as? [String: Any]
            }
            for (n, (field, _)) in cases.enumerated() {
                let error = try #require(byID["size-\(n)"])
                #expect(error["code"] as? String == "too_large", "\(field)")
                #expect((error["message"] as? String)?.hasPrefix("recommendations[0].\(field):") == true, "\(error)")
            }
            let reason = Wire.json(["approval_id": "ap-1", "decision": "reject", "user_id": "u", "reason": String(repeating: "r", count: 4097), "reply_to": "test:reason"])
            try h.push(reason, to: "coord:approvals")
            let refused = try h.reply(on: "test:reason")
            #expect((refused["error"] as? [String: Any])?["code"] as? String == "too_large")
        }

        @Test("JSON that is not an object is invalid_request, not invalid_json")
        func nonObjectJSON() throws {
            let h = try Harness()
            try h.startDaemon()
            let values = ["[1,2,3]", "\"x\"", "3", "null", "true", " [ {\"reply_to\": \"test:x\"} ] "]
            for value in values { try h.push(value) }
            try h.push("[1,2")
            let dead = try deadLetters(h, count: values.count + 1)
            for value in values {
                let letter = try #require(dead.first { $0["raw"] as? String == value }, "\(value)")
                #expect(code(letter) == "invalid_request", "\(value)")
            }
            #expect(code(try #require(dead.first { $0["raw"] as? String == "[1,2" })) == "invalid_json")
        }

        @Test("16 MiB of control bytes: a dead letter within the bound, with truncated and raw_bytes (raw_sha256 only where the daemon read the whole message)")
        func boundedDeadLetters() throws {
            let h = try Harness()
            try h.startDaemon()
            let size = 16 << 20
            let controls = [UInt8](repeating: 0x01, count: size)
            try h.push(bytes: controls)
            let text = [UInt8](String(repeating: "€", count: 100_000).utf8)  // 300,000 bytes of UTF-8
            try h.push(bytes: text)
            try h.push(bytes: [UInt8](repeating: 0x02, count: 1000))  // small: kept whole
            try h.push(bytes: [UInt8](repeating: 0x41, count: 200_000), to: "coord:approvals")
            try h.wait("4 dead letters", timeout: 60) { try h.length("coord:dead") >= 4 }
            let entries = try #require(try h.redis.send("LRANGE", "coord:dead", 0, -1).array).map { try #require($0.bytes) }
            #expect(entries.count == 4)
            let bound = 65_536 * 4 / 3 + 2048
            for entry in entries { #expect(entry.count <= bound, "a dead letter of \(entry.count) bytes") }
            let letters = try entries.map(Harness.object)
            func hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

            let big = try #require(letters.first { $0["raw_bytes"] as? Int == size })
            #expect(big["truncated"] as? Bool == true)
            // Over --max-message-bytes: refused from its first bytes, never read whole, so no
            // hash of the whole (PROTOCOL.md 6, v3).
            #expect(big["raw_sha256"] == nil)
            let kept = try #require((big["raw_base64"] as? String).flatMap { Data(base64Encoded: $0) })
            #expect(kept.count == 65_536 && kept.allSatisfy { $0 == 0x01 })

            let utf8 = try #require(letters.first { $0["raw_bytes"] as? Int == text.count })
            #expect(utf8["truncated"] as? Bool == true)
            #expect(utf8["raw_sha256"] as? String == hex(text))
            let prefix = try #require(utf8["raw"] as? String)
            #expect(prefix.utf8.count <= 65_536 && prefix.utf8.count > 65_530)
            #expect(text.starts(with: Array(prefix.utf8)))

            let small = try #require(letters.first { ($0["raw"] as? String)?.utf8.count == 1000 })
            #expect(small["truncated"] == nil && small["raw_bytes"] == nil)

            let approval = try #require(letters.first { $0["queue"] as? String == "coord:approvals" })
            #expect(approval["truncated"] as? Bool == true && approval["raw_bytes"] as? Int == 200_000)
            #expect((approval["raw"] as? String)?.utf8.count == 65_536)
        }
    }
}
