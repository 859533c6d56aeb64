import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("A request's cost does not grow with the customer's history", .sharesMachine)
    struct HistoryTests {
        /// Leaves `count` active recommendations for `customer`, each on a resource of its own.
        func seed(_ h: Harness, customer: String, count: Int) throws {
            let recs = (0..<count).map { Wire.recommendation("old-\($0)", resources: ["res-\($0)"]) }
            try h.push(Wire.coordinate("seed-\(customer)", customer: customer, replyTo: "test:seed", recs))
            let reply = try h.reply(on: "test:seed", timeout: 60)
            #expect(try Harness.outcome(reply).kept.count == count)
        }

        /// Sends one request (a recommendation conflicting with old-17, one unrelated) and
        /// returns its outcome and the read commands Redis ran meanwhile.
        func probe(_ h: Harness, customer: String) throws -> (kept: [String], discarded: [String: String], reads: [String: Int]) {
            let request = Wire.coordinate("probe-\(customer)", customer: customer, replyTo: "test:probe", [
                Wire.recommendation("conflicting", action: "scale_down", resources: ["res-17"]),
                Wire.recommendation("unrelated", resources: ["fresh-1"]),
            ])
            _ = try h.redis.send("CONFIG", "RESETSTAT")
            try h.push(request)
            let reply = try h.reply(on: "test:probe")
            let calls = try h.commandCalls()
            var reads: [String: Int] = [:]
            for command in ["hvals", "hgetall", "hmget", "hget", "smembers", "sunion", "hexists", "hlen", "hkeys", "scan"] {
                reads[command] = calls[command] ?? 0
            }
            let outcome = try Harness.outcome(reply)
            return (outcome.kept, outcome.discarded, reads)
        }

        @Test("5,000 active recommendations: the conflicting one is discarded, the unrelated kept, and Redis reads what it reads for 5")
        func history() throws {
            let h = try Harness()
            try h.startDaemon { $0.workers = 1; $0.maxMessageBytes = 16 << 20 }
            try seed(h, customer: "big", count: 5000)
            try seed(h, customer: "small", count: 20)
            let big = try probe(h, customer: "big")
            let small = try probe(h, customer: "small")
            #expect(big.kept == ["unrelated"])
            #expect(big.discarded["conflicting"] == "conflicts_with_active")
            #expect(small.kept == ["unrelated"])
            #expect(small.discarded["conflicting"] == "conflicts_with_active")
            // The same commands, the same number of times, whatever the history.
            #expect(big.reads == small.reads)
            #expect(big.reads["hvals"] == 0 && big.reads["hgetall"] == 0 && big.reads["scan"] == 0)
            // What was read: the records on res-17 and fresh-1 and the customer-wide ones, not 5,000.
            let fetched = try h.redis.send("EVAL", "return #redis.call('SMEMBERS', KEYS[1])", 1, h.keys.resourceIndex(customer: "big", resource: "res-17")).integer
            #expect(fetched == 1)
        }
    }
}
