@testable import CoordinatorDaemon
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 2.2: no script call blocks Redis for long, whatever a request the
    /// limits admit holds. A `coordinate` too large for one short call is committed in parts
    /// under the customer's lock, from a journal that anyone meeting it finishes
    /// (docs/DESIGN.md, "Staged commits").
    @Suite("Staged commits: the largest request in short script calls", .sharesMachine)
    struct StagedCommitTests {
        static let limits = ["--max-recommendations", "10000", "--max-message-bytes", "67108864"]

        /// The largest request the limits admit: 10,000 recommendations, 10,000 resources.
        static func largest(_ requestID: String) -> String {
            Wire.coordinate(requestID, customer: "cust-big", replyTo: "test:big",
                            (0..<10_000).map { Wire.recommendation("big-\($0)", resources: ["vm-\($0)"]) })
        }

        /// Every script call SLOWLOG saw, oldest first: its script, its arguments (SLOWLOG shows
        /// 32 at most, the last saying how many more) and its time in µs.
        static func scriptCalls(_ h: Harness) throws -> [(sha: String, arguments: Int, micros: Int)] {
            try (h.redis.send("SLOWLOG", "GET", "-1").array ?? []).compactMap { entry in
                let fields = entry.array ?? []
                guard fields.count >= 4, let micros = fields[2].integer, let args = fields[3].array,
                      args.first?.string?.uppercased() == "EVALSHA" else { return nil }
                var count = args.count
                if let last = args.last?.string, last.hasPrefix("... ("),
                   let more = Int(last.dropFirst(5).prefix { $0.isNumber }) { count += more - 1 }
                return (args.count > 1 ? args[1].string ?? "" : "", count, Int(micros))
            }.reversed()
        }

        @Test("10,000 recommendations on 10,000 resources: committed in short calls (SLOWLOG), all kept, answered once, nothing left of the journal")
        func largestInShortCalls() throws {
            let h = try Harness()
            try h.startDaemon { $0.maxRecommendations = 10_000; $0.maxMessageBytes = 64 << 20 }
            _ = try h.redis.send("CONFIG", "SET", "slowlog-log-slower-than", "0")
            _ = try h.redis.send("CONFIG", "SET", "slowlog-max-len", "200000")
            _ = try h.redis.send("SLOWLOG", "RESET")
            try h.push(Self.largest("big"))
            let reply = try h.reply(on: "test:big", timeout: 120)
            #expect(try Harness.outcome(reply).kept.count == 10_000)
            let all = try Self.scriptCalls(h)
            // (Under 50 µs: the first call's NOSCRIPT, answered before the script ran.)
            let commits = all.filter { $0.sha == Scripts.coordinate.sha1 && $0.micros >= 50 }
            print("staged: script calls (arguments:µs)", all.filter { $0.arguments > 100 }.map { "\($0.arguments):\($0.micros)" })
            print("staged: \(commits.count) commit calls, the slowest \(commits.map(\.micros).max() ?? 0) µs, the largest \(commits.map(\.arguments).max() ?? 0) arguments; all script calls: the slowest \(all.map(\.micros).max() ?? 0) µs")
            // In one call this request is about 60,000 arguments and 80,000 commands, which
            // blocked Redis 257 ms on a quiet machine.
            #expect(commits.count >= 5, "\(commits.count) calls")
            // The first call carries the guards (20,000 version fields and ids; sent twice when
            // Redis answered NOSCRIPT first); every other one a share of the writes.
            #expect(commits.filter { $0.arguments > 20_000 }.count <= 2, "\(commits.map(\.arguments))")
            #expect(commits.filter { $0.arguments <= 20_000 }.count >= 4, "\(commits.map(\.arguments))")
            #expect(try h.redis.send("HLEN", h.keys.active(customer: "cust-big")).integer == 10_000)
            #expect(try h.redis.send("EXISTS", h.keys.journal(customer: "cust-big"), h.keys.customerLock("cust-big")).integer == 0)
            #expect(try h.scanKeys("coord:{cust-big}:journal*").isEmpty)
            _ = try h.settle()
            #expect(try h.length("test:big") == 0, "answered once")
            // The same request again: its stored reply.
            _ = try h.redis.send("SLOWLOG", "RESET")
            try h.push(Self.largest("big"))
            #expect(try Harness.outcome(try h.reply(on: "test:big", timeout: 60)).kept.count == 10_000)
            // Its reads (the 10,000 resources' index sets, now full) in calls of their own too.
            let again = try Self.scriptCalls(h).filter { $0.arguments > 100 }
            print("staged: the same request again (arguments:µs)", again.map { "\($0.arguments):\($0.micros)" })
            #expect(again.count >= 4 && again.allSatisfy { $0.arguments <= 20_000 }, "\(again.map(\.arguments))")
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("signed, with and without request_id: 10,000 recommendations committed in short calls; a replay of the same bytes is answered with the same reply and changes nothing",
              arguments: [true, false])
        func signedInShortCalls(withRequestID: Bool) throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try h.startDaemon { $0.maxRecommendations = 10_000; $0.maxMessageBytes = 64 << 20; $0.trustFile = fixture.path }
            _ = try h.redis.send("CONFIG", "SET", "slowlog-log-slower-than", "0")
            _ = try h.redis.send("CONFIG", "SET", "slowlog-max-len", "200000")
            _ = try h.redis.send("SLOWLOG", "RESET")
            var object = try Harness.object(Array(Self.largest("signed").utf8))
            object["customer_id"] = "cust-1"
            if !withRequestID { object.removeValue(forKey: "request_id") }
            var recs = try #require(object["recommendations"] as? [[String: Any]])
            for i in recs.indices { recs[i]["customer_id"] = "cust-1" }
            object["recommendations"] = recs
            let signed = try fixture.sign(Wire.json(object), as: "cost-agent-1")
            try h.push(signed)
            let first = try h.reply(on: "test:big", timeout: 120)
            #expect(try Harness.outcome(first).kept.count == 10_000, "\(first["error"] ?? "")")
            let commits = try Self.scriptCalls(h).filter { $0.sha == Scripts.coordinate.sha1 && $0.micros >= 50 }
            #expect(commits.filter { $0.arguments > 20_000 }.count <= 2, "\(commits.map(\.arguments))")
            #expect(commits.filter { $0.arguments <= 20_000 }.count >= 4, "\(commits.map(\.arguments))")
            #expect(try h.redis.send("HLEN", h.keys.active(customer: "cust-1")).integer == 10_000)
            // The same bytes again: a replay, answered with the first reply, nothing more kept.
            try h.push(signed)
            let again = try h.reply(on: "test:big", timeout: 60)
            #expect(Wire.json(again) == Wire.json(first), "the replay got another reply")
            #expect(try h.redis.send("HLEN", h.keys.active(customer: "cust-1")).integer == 10_000)
            #expect(try h.scanKeys("coord:{cust-1}:journal*").isEmpty)
            _ = try h.settle(sign: { try fixture.sign($0, as: "carol@example.com") })
            #expect(try h.length("test:big") == 0)
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("a key of the wrong type planted among a later part's (the event stream): the commit is abandoned at that part, the message answered with the error, the customer not held")
        func plantedKeyAbandons() throws {
            let h = try Harness()
            try h.startDaemon { $0.maxRecommendations = 10_000; $0.maxMessageBytes = 64 << 20 }
            // Records come first, events last: the first part writes, a later one meets the string.
            _ = try h.redis.send("SET", h.keys.eventStream, "planted")
            try h.push(Self.largest("planted"))
            let reply = try h.reply(on: "test:big", timeout: 120)
            #expect(reply["ok"] as? Bool == false, "\(reply)")
            #expect(try h.redis.send("EXISTS", h.keys.journal(customer: "cust-big"), h.keys.customerLock("cust-big")).integer == 0)
            #expect(try h.scanKeys("coord:{cust-big}:journal*").isEmpty)
            let applied = try h.redis.send("HLEN", h.keys.active(customer: "cust-big")).integer ?? 0
            print("staged: abandoned with \(applied) of 10,000 recommendations applied")
            _ = try h.redis.send("DEL", h.keys.eventStream)
            try h.push(Wire.coordinate("after", customer: "cust-big", replyTo: "test:after",
                                       [Wire.recommendation("after", resources: ["vm-after"])]))
            #expect(try h.reply(on: "test:after", timeout: 30)["ok"] as? Bool == true)
        }

        @Test("a daemon SIGKILLed in the middle of a staged commit: its journal is finished once, by the daemon the message is handed back to, or by another request of the customer; answered once",
              arguments: ["handed back", "another request"])
        func killedMidCommit(finisher: String) throws {
            let h = try Harness()
            let handedBack = finisher == "handed back"
            let owner = try h.launch(["run", "--sim-speed", "0", "--heartbeat-ttl", handedBack ? "2" : "60"] + Self.limits)
            defer { _ = ChildProcess.stop(owner, signal: SIGKILL) }
            try h.wait("its heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            try h.push(Self.largest(handedBack ? "big" : "big-2"))
            let journal = h.keys.journal(customer: "cust-big")
            let deadline = Date().addingTimeInterval(120)
            while try h.redis.send("EXISTS", journal).integer != 1 {
                #expect(Date() < deadline, "no staged commit began")
                if Date() >= deadline { return }
                usleep(500)  // pacing only
            }
            kill(owner.processIdentifier, SIGKILL)
            owner.waitUntilExit()
            // The fault landed mid-commit: part of it applied, the customer held, the rest in the journal.
            #expect(try h.redis.send("EXISTS", journal).integer == 1, "the kill came after the commit ended")
            let applied = try h.redis.send("HLEN", h.keys.active(customer: "cust-big")).integer ?? 0
            #expect(applied < 10_000, "\(applied) of 10,000 applied before the kill")

            try h.startDaemon { $0.maxRecommendations = 10_000; $0.maxMessageBytes = 64 << 20; $0.heartbeatTTL = 2 }
            if !handedBack {
                try h.push(Wire.coordinate("small", customer: "cust-big", replyTo: "test:small",
                                           [Wire.recommendation("extra", resources: ["vm-extra"])]))
                #expect(try Harness.outcome(try h.reply(on: "test:small", timeout: 60)).kept == ["extra"])
            }
            let reply = try h.reply(on: "test:big", timeout: 60)
            #expect(try Harness.outcome(reply).kept.count == 10_000)
            _ = try h.settle()
            #expect(try h.length("test:big") == 0, "answered once")
            #expect(try h.redis.send("HLEN", h.keys.active(customer: "cust-big")).integer == (handedBack ? 10_000 : 10_001))
            #expect(try h.redis.send("EXISTS", journal, h.keys.customerLock("cust-big")).integer == 0)
            #expect(try h.scanKeys("coord:{cust-big}:journal*").isEmpty)
            #expect(try h.inflightCount() == 0)
            #expect(try h.deadLetters().isEmpty)
        }
    }
}
