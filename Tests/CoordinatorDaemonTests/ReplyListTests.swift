import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 2.1 (v3): a reply list keeps `--reply-max` replies, so a client that pushes a
    /// burst and reads afterwards loses none; without a reply prefix, a list the daemon did not
    /// create and that has no TTL is someone else's and is only pushed to.
    @Suite("Reply lists: nothing lost, nobody else's list trimmed or expired", .sharesMachine)
    struct ReplyListTests {
        @Test("20,000 requests with one reply_to, read only once all are answered: every reply is there, exactly once")
        func noReplyLost() throws {
            let h = try Harness()
            try h.startDaemon()
            let total = 20_000
            try h.pushBurst("many", count: total, replyTo: "test:many")
            // Nothing is read until every request has left the queue and its in-flight list.
            try h.wait("all \(total) requests to be answered", timeout: 180) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0
            }
            let ttl = try #require(try h.redis.send("TTL", "test:many").integer)
            #expect(ttl > 0, "a list the daemon created gets --reply-ttl")
            #expect(try h.length("test:many") == total)
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:many"), count: total)
        }

        @Test("Without a reply prefix, a foreign list without a TTL named as reply_to keeps its length plus one and no TTL")
        func foreignListUntouched() throws {
            let h = try Harness()
            try h.startDaemon { $0.replyMax = 1000 }
            var jobs: [RedisCommand] = []
            for n in 0..<5000 { jobs.append(RedisCommand("RPUSH", "app:jobs", "job-\(n)")) }
            _ = try h.redis.pipeline(jobs)
            try h.push(Wire.coordinate("foreign-1", customer: "cust-f", replyTo: "app:jobs",
                                       [Wire.recommendation("f1", resources: ["i-f"])]))
            // A marker answered after it (one intake loop and batch order are not promised, so
            // wait for the foreign reply itself: it is the list's head).
            try h.wait("the reply on app:jobs") { try h.length("app:jobs") == 5001 }
            let head = try Harness.object(try #require(try h.redis.send("LINDEX", "app:jobs", 0).bytes))
            #expect(head["request_id"] as? String == "foreign-1")
            #expect(try h.redis.send("TTL", "app:jobs").integer == -1)
            #expect(try h.redis.send("LINDEX", "app:jobs", -1).string == "job-4999")
            #expect(try h.redis.send("LINDEX", "app:jobs", 1).string == "job-0")

            // A list that already has a TTL is a reply list: capped and its TTL refreshed.
            var mine: [RedisCommand] = []
            for n in 0..<1500 { mine.append(RedisCommand("RPUSH", "test:mine", "old-\(n)")) }
            mine.append(RedisCommand("EXPIRE", "test:mine", 100))
            _ = try h.redis.pipeline(mine)
            try h.push(Wire.coordinate("mine-1", customer: "cust-f", replyTo: "test:mine",
                                       [Wire.recommendation("m1", resources: ["i-m"])]))
            try h.wait("test:mine to be capped at --reply-max") { try h.length("test:mine") == 1000 }
            let ttl = try #require(try h.redis.send("TTL", "test:mine").integer)
            #expect(ttl > 100, "the TTL is refreshed to --reply-ttl")
        }

        @Test("With --reply-prefix, every reply list gets the TTL and the cap, and the cut replies are counted")
        func prefixedListsCapped() throws {
            let h = try Harness()
            let port = try h.metricsPort()
            try h.startDaemon {
                $0.replyPrefix = "replies:"
                $0.replyMax = 10
                $0.metricsPort = port
            }
            var old: [RedisCommand] = []
            for n in 0..<20 { old.append(RedisCommand("RPUSH", "replies:a", "old-\(n)")) }
            _ = try h.redis.pipeline(old)
            try h.push(Wire.coordinate("pre-1", customer: "cust-p", replyTo: "replies:a",
                                       [Wire.recommendation("p1", resources: ["i-p"])]))
            try h.wait("replies:a to be capped at 10") { try h.length("replies:a") == 10 }
            let head = try Harness.object(try #require(try h.redis.send("LINDEX", "replies:a", 0).bytes))
            #expect(head["request_id"] as? String == "pre-1")
            let ttl = try #require(try h.redis.send("TTL", "replies:a").integer)
            #expect(ttl > 0)
            let scrape = try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics")
            #expect(scrape.value("coordinatord_replies_dropped_total") == 11)
        }
    }
}
