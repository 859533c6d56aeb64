import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Two daemons, the same thing at the same moment: each effect happens once.
    @Suite("At the same moment, on two daemons", .sharesMachine)
    struct SimultaneousTests {
        @Test("Two approvers vote on 50 critical approvals at the same moment: every vote counts once, each approval is approved once with both")
        func twoApproversAtOnce() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            var ids: [String] = []
            for n in 0..<50 {
                try h.push(Wire.coordinate("crit-\(n)", customer: "cust-crit", replyTo: "test:crit", executeNow: false,
                                           [Wire.recommendation("crit-\(n)", action: "migrate_database", risk: "critical",
                                                                resources: ["db-\(n)"])]))
                let result = try #require(try h.reply(on: "test:crit")["result"] as? [String: Any])
                ids.append(try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String))
            }
            let before = try h.processed(by: h.daemons, total: ids.count)
            try h.waitUntilReady()
            // Both votes of an approval in one round trip: the two daemons take them together.
            var votes: [RedisCommand] = []
            for id in ids {
                votes.append(RedisCommand("LPUSH", "coord:approvals", Wire.json(
                    ["approval_id": id, "decision": "approve", "user_id": "alice", "reply_to": "test:votes"])))
                votes.append(RedisCommand("LPUSH", "coord:approvals", Wire.json(
                    ["approval_id": id, "decision": "approve", "user_id": "bob", "reply_to": "test:votes"])))
            }
            _ = try h.redis.pipeline(votes)
            var statuses: [String: [String]] = [:]
            for _ in 0..<(ids.count * 2) {
                let reply = try h.reply(on: "test:votes")
                #expect(reply["ok"] as? Bool == true, "\(reply)")
                let result = try #require(reply["result"] as? [String: Any])
                statuses[try #require(result["id"] as? String), default: []].append(try #require(result["status"] as? String))
            }
            for id in ids {
                // One vote left it pending, the other approved it: neither was lost or counted twice.
                #expect(statuses[id]?.sorted() == ["approved", "pending"], "\(id): \(statuses[id] ?? [])")
                let stored = try Harness.object(try #require(try h.redis.send("GET", h.keys.approval(id)).bytes))
                #expect(stored["status"] as? String == "approved")
                let approvers = (stored["approvers"] as? [[String: Any]])?.compactMap { $0["user_id"] as? String } ?? []
                #expect(approvers.sorted() == ["alice", "bob"], "\(id): \(approvers)")
            }
            try h.settle()
            let approved = try h.events().filter { $0["type"] as? String == "approval.approved" }
            #expect(approved.count == ids.count)
            #expect(Set(approved.compactMap { $0["approval_id"] as? String }) == Set(ids))
            let partly = try h.events().filter { $0["type"] as? String == "approval.partially_approved" }
            #expect(partly.count == ids.count)
            try h.expectEveryDaemonWorked(total: ids.count * 2 + 1, since: before)  // and the marker
        }

        @Test("The same request_id sent twice at the same moment to two daemons, 100 times: two identical replies, one effect each")
        func sameRequestAtOnce() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            let before = try h.processed(by: h.daemons, total: 0)
            try h.waitUntilReady()
            var pushes: [RedisCommand] = []
            for n in 0..<100 {
                let message = Wire.coordinate("twice-\(n)", customer: "cust-twice-\(n % 10)", replyTo: "test:twice",
                                              [Wire.recommendation("tw-\(n)", resources: ["i-\(n)"])])
                pushes.append(RedisCommand("LPUSH", "coord:requests", message))
                pushes.append(RedisCommand("LPUSH", "coord:requests", message))
            }
            _ = try h.redis.pipeline(pushes)
            var replies: [String: [[UInt8]]] = [:]
            for _ in 0..<200 {
                guard let (_, value) = try h.redis.blockingPopRight("test:twice", timeout: 30) else {
                    throw HarnessError.timeout("replies stopped coming")
                }
                let object = try Harness.object(value)
                #expect(object["ok"] as? Bool == true, "\(object)")
                replies[try #require(object["request_id"] as? String), default: []].append(value)
            }
            #expect(replies.count == 100)
            for (id, pair) in replies {
                #expect(pair.count == 2, "\(id)")
                #expect(pair.first == pair.last, "\(id): two different replies to one request")
            }
            try h.settle()
            // One effect each: one coordination and one plan per request.
            let completed = try h.events().filter { $0["type"] as? String == "coordination.completed" }
            #expect(completed.count == 100)
            let plans = try h.events().filter { $0["type"] as? String == "plan.created" }
            #expect(plans.count == 100)
            #expect(Set(plans.compactMap { $0["recommendation_id"] as? String }).count == 100)
            try h.expectEveryDaemonWorked(total: 200 + 1, since: before)
        }
    }
}

extension RealRedis {
    /// PROTOCOL.md 6: only a daemon that died holding a message brings it closer to `poison`,
    /// and here the deaths are real: no counter is set by the test.
    @Suite("Poison from real redeliveries", .sharesMachine)
    struct PoisonRedeliveryTests {
        /// Large enough for the heavy request (about 3 MB), which is then processed, not refused.
        static let maxBytes = 16 << 20

        /// A request heavy enough that a daemon holds it in flight for a while (10,000
        /// recommendations to parse, resolve and commit).
        static func heavy() -> String {
            Wire.coordinate("heavy-1", customer: "cust-heavy", replyTo: "test:heavy",
                            (0..<10_000).map { Wire.recommendation("h\($0)", resources: ["i-\($0)"]) })
        }

        @Test("A daemon killed while holding the same message --max-deliveries (2) times: the next daemon dead-letters it as poison, and an innocent request is answered")
        func killedTwice() throws {
            let h = try Harness()
            try h.push(Self.heavy())
            for kill in 1...2 {
                let process = try h.launch(["run", "--heartbeat-ttl", "1", "--sim-speed", "0", "--max-deliveries", "2",
                                            "--workers", "1", "--max-message-bytes", "\(Self.maxBytes)"])
                // It takes the message into an in-flight list of its own (after recovering it
                // from the daemon killed before), and dies holding it.
                let pid = process.processIdentifier
                try h.wait("daemon \(kill) to hold the heavy request in flight", timeout: 30) {
                    try h.scanKeys("coord:inflight:*-\(pid)-*").contains { try h.length($0) == 1 }
                }
                ChildProcess.stop(process, signal: SIGKILL)
                #expect(try h.length("test:heavy") == 0, "the killed daemon never answered it")
                #expect(try h.inflightCount() == 1)
            }
            // Delivered twice, twice unfinished: the next daemon dead-letters it instead of a third.
            try h.startDaemon {
                $0.heartbeatTTL = 1
                $0.maxDeliveries = 2
                $0.maxMessageBytes = Self.maxBytes
            }
            try h.wait("the poison dead letter", timeout: 30) { try h.length(h.keys.dead) == 1 }
            let letter = try #require(try h.deadLetters().first)
            #expect(Harness.code(letter) == "poison")
            #expect(letter["attempts"] as? Int == 2)
            #expect(try h.length("test:heavy") == 0, "a poison message is not answered")
            try h.push(Wire.coordinate("innocent-1", customer: "cust-innocent", replyTo: "test:innocent",
                                       [Wire.recommendation("in1", resources: ["i-in"])]))
            #expect(try h.reply(on: "test:innocent")["ok"] as? Bool == true)
            try h.settle()
            #expect(try h.length(h.keys.dead) == 1, "nothing else was dead-lettered")
        }
    }
}
