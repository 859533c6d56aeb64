import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// A mixed run: 1,000 hostile messages interleaved with 1,000 valid requests from 50
    /// customers, against one daemon. Every valid request is answered correctly, every hostile one
    /// refused or dead-lettered, nothing is left in flight, the dead-letter list stays within its
    /// cap, and no key of the daemon's own gets a TTL from anyone.
    @Suite("Mixed run", .sharesMachine)
    struct MixedRunTests {
        enum Expect { case dead, deadAndReply, answered, undeliverable }

        struct Hostile {
            var queue: String
            var bytes: [UInt8]
            var expect: Expect
        }

        /// The hostile cases of `HostileInputTests` and of the bad-input tests, cycled through.
        static func hostile(_ n: Int) -> Hostile {
            let q = "coord:requests"
            func text(_ s: String, _ queue: String = q, _ expect: Expect = .dead) -> Hostile {
                Hostile(queue: queue, bytes: Array(s.utf8), expect: expect)
            }
            let own = ["coord:dead", "coord:requests", "coord:{mixed-3}:wide", "coord:{mixed-4}:active",
                       "coord:inflight:x", "coord", "coord:events:stream", "coord:approvals"]
            switch n % 22 {
            case 0: return text(Wire.json(["kind": "get_plan", "plan_id": "x", "request_id": "h-\(n)", "reply_to": own[n / 20 % own.count]]))
            case 1: return text(Wire.coordinate("h-\(n)", customer: "mixed-\(n % 50)", replyTo: own[n / 20 % own.count], [Wire.recommendation("hx-\(n)")]))
            case 2: return text(Wire.json(["kind": "get_plan", "plan_id": "x", "reply_to": String(repeating: "r", count: 257)]))
            case 3: return text(Wire.json(["kind": "get_plan", "plan_id": "x", "reply_to": "mixed:with space"]))
            case 4: return text(Wire.coordinate("bad*id-\(n)", replyTo: "mixed:hostile", [Wire.recommendation("r")]), q, .deadAndReply)
            case 5: return text(Wire.coordinate(String(repeating: "€", count: 43), replyTo: "mixed:hostile", [Wire.recommendation("r")]), q, .deadAndReply)
            case 6: return text(Wire.coordinate("h-\(n)", customer: "mixed {1}", replyTo: "mixed:hostile", [Wire.recommendation("r")]), q, .deadAndReply)
            case 7:
                var rec = Wire.recommendation("big-title")
                rec["title"] = String(repeating: "t", count: 5000)
                return text(Wire.coordinate("h-\(n)", customer: "mixed-\(n % 50)", replyTo: "mixed:hostile", [rec]), q, .deadAndReply)
            case 8:
                var rec = Wire.recommendation("big-params")
                rec["parameters"] = ["blob": String(repeating: "p", count: 70_000)]
                return text(Wire.coordinate("h-\(n)", customer: "mixed-\(n % 50)", replyTo: "mixed:hostile", [rec]), q, .deadAndReply)
            case 9: return text(["[1,2,3]", "\"x\"", "3", "null"][n / 20 % 4])
            case 10: return text("{not json")
            case 11: return Hostile(queue: q, bytes: [0xFF, 0xFE, 0x00, 0x41], expect: .dead)
            case 12: return Hostile(queue: q, bytes: [UInt8](repeating: 0x01, count: 200_000), expect: .dead)
            case 13: return text(#"{"kind":"teleport","reply_to":"mixed:hostile"}"#, q, .deadAndReply)
            case 14: return text(Wire.coordinate("h-\(n)", customer: "mixed-\(n % 50)", replyTo: "mixed:hostile",
                                                 [Wire.recommendation("r", risk: "extreme")]), q, .deadAndReply)
            case 15: return text(Wire.json(["approval_id": "ap-1", "decision": "approve", "user_id": "u", "reply_to": "coord:dead"]), "coord:approvals")
            case 16: return text("approve ap*1 alice", "coord:approvals")
            case 17: return text("[1,2,3]", "coord:approvals")
            case 18: return text(Wire.json(["kind": "list_approvals", "customer_id": "mixed?", "reply_to": "mixed:hostile"]), q, .deadAndReply)
            // A reply list that holds a string: the reply cannot be written (reply_undeliverable).
            case 20: return text(Wire.json(["kind": "get_plan", "request_id": "h-\(n)", "plan_id": "p-none", "reply_to": "mixed:string"]), q, .undeliverable)
            // Another customer's request_id on a read: its stored coordinate reply must not leak.
            case 21: return text(Wire.json(["kind": "list_approvals", "request_id": "ok-\(n - 1)", "customer_id": "mixed-\((n + 7) % 50)",
                                            "reply_to": "mixed:leak"]), q, .answered)
            default: return text(Wire.json(["kind": "get_plan", "request_id": "h-\(n)", "plan_id": "p x", "reply_to": "mixed:hostile"]), q, .deadAndReply)
            }
        }

        @Test("1,000 hostile messages among 1,000 valid requests from 50 customers")
        func mixedRun() throws {
            let h = try Harness()
            let cap = 600
            _ = try h.redis.send("SET", "mixed:string", "not a list")
            try h.startDaemon { $0.deadLetterMax = cap }
            var commands: [RedisCommand] = []
            var hostile: [Hostile] = []
            for n in 0..<1000 {
                let customer = "mixed-\(n % 50)"
                commands.append(RedisCommand("LPUSH", "coord:requests", Wire.coordinate(
                    "ok-\(n)", customer: customer, replyTo: "mixed:ok",
                    [Wire.recommendation("r-\(n)", resources: ["i-\(n)"])])))
                let bad = Self.hostile(n)
                hostile.append(bad)
                commands.append(RedisCommand("LPUSH", bad.queue, bad.bytes))
            }
            let replying = hostile.filter { $0.expect == .deadAndReply }.count
            // Dead letters the daemon counts itself (reply_undeliverable ones included: the
            // daemon writes them once the commit says the reply could not be pushed).
            let deadLettered = hostile.filter { $0.expect == .dead || $0.expect == .deadAndReply || $0.expect == .undeliverable }.count

            // Nobody but the daemon may set a TTL on its keys: watch them while the run goes on.
            let watcher = try h.server.client()
            defer { watcher.close() }
            var ttls: Set<Int> = []
            for start in stride(from: 0, to: commands.count, by: 200) {
                _ = try h.redis.pipeline(Array(commands[start..<min(start + 200, commands.count)]))
                for key in ["coord:requests", "coord:dead", "coord:approvals"] {
                    if let ttl = try watcher.send("TTL", key).integer, ttl >= 0 { ttls.insert(Int(ttl)) }
                }
            }

            var replies: [String: [String: Any]] = [:]
            let deadline = Date().addingTimeInterval(120)
            while replies.count < 1000, Date() < deadline {
                guard let (_, raw) = try h.redis.blockingPopRight("mixed:ok", timeout: 1) else { continue }
                let reply = try Harness.object(raw)
                let id = reply["request_id"] as? String ?? "?"
                #expect(replies[id] == nil, "two replies for \(id)")
                replies[id] = reply
                if let ttl = try watcher.send("TTL", "coord:dead").integer, ttl >= 0 { ttls.insert(Int(ttl)) }
            }
            #expect(replies.count == 1000)
            for n in 0..<1000 {
                let reply = try #require(replies["ok-\(n)"], "ok-\(n)")
                #expect(reply["ok"] as? Bool == true, "\(reply)")
                let result = reply["result"] as? [String: Any]
                #expect(result?["recommendations_kept"] as? Int == 1, "ok-\(n)")
                #expect((result?["recommendations"] as? [[String: Any]])?.first?["id"] as? String == "r-\(n)")
            }

            // Every hostile message is refused: dead-lettered, with an error reply where reply_to is valid.
            // The list is capped below the count: count what the daemons report having dead-lettered.
            // Its heartbeat's count, which must be there: a missing one is a failure, not zero.
            let daemonID = try #require(h.daemons.first?.workerID)
            func reported() throws -> Int {
                let text = try #require(try h.redis.send("HGET", h.keys.worker(daemonID), "dead_lettered").string)
                return try #require(Int(text))
            }
            try h.wait("every hostile message dead-lettered", timeout: 60) { try reported() >= deadLettered }
            // None more after: a marker answered and nothing queued or in flight, then a
            // heartbeat that counted everything committed before it.
            try h.settle()
            try h.awaitFreshHeartbeats()
            #expect(try reported() == deadLettered)
            var errors = 0
            while let (_, raw) = try h.redis.blockingPopRight("mixed:hostile", timeout: 1) {
                let reply = try Harness.object(raw)
                #expect(reply["ok"] as? Bool == false)
                errors += 1
            }
            #expect(errors == replying)
            let dead = try h.deadLetters()
            #expect(dead.count == cap, "the dead-letter list is kept at its cap")
            #expect(dead.contains { ($0["error"] as? [String: Any])?["code"] as? String == "reply_undeliverable" })
            #expect(try h.redis.send("TYPE", "mixed:string").string == "string")
            // Reads with another customer's request_id get their own answer, never its coordinate reply.
            var leaks = 0
            while let (_, raw) = try h.redis.blockingPopRight("mixed:leak", timeout: 1) {
                let reply = try Harness.object(raw)
                #expect((reply["result"] as? [String: Any])?["recommendations_kept"] == nil, "\(reply)")
                #expect(reply["kind"] as? String == "list_approvals")
                leaks += 1
            }
            #expect(leaks == hostile.filter { $0.expect == .answered }.count)
            #expect(dead.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String != nil })
            #expect(!dead.contains { $0["ok"] != nil }, "a reply was written into coord:dead")
            for entry in try #require(try h.redis.send("LRANGE", "coord:dead", 0, -1).array).map({ try #require($0.bytes) }) {
                #expect(entry.count <= 65_536 * 4 / 3 + 2048)
            }

            // Nothing in flight, nothing left queued (settled above), no TTL on the daemon's own keys.
            #expect(try h.length("coord:requests") == 0)
            #expect(try h.length("coord:approvals") == 0)
            for key in try h.scanKeys("coord:inflight:*") {
                #expect(try h.length(key) == 0, "\(key)")
                #expect(try h.redis.send("TTL", key).integer == -1, "\(key)")
            }
            #expect(ttls.isEmpty, "TTLs seen on the daemon's queues: \(ttls)")
            var own = ["coord:dead", "coord:events:stream"]
            own += (0..<50).map { "coord:{mixed-\($0)}:active" }
            for key in own { #expect(try h.redis.send("TTL", key).integer == -1, "\(key)") }
            for n in 0..<50 {
                #expect(try h.redis.send("HLEN", "coord:{mixed-\(n)}:active").integer == 20)
            }
        }
    }
}
