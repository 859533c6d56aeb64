import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 7 (v3): the daemon reconnects with backoff and loses nothing; Redis going
    /// away is no delivery of the messages in flight (section 6).
    @Suite("Redis gone: killed mid-burst, or not there at start", .sharesMachine)
    struct RedisOutageTests {
        @Test("kill -9 of redis-server (AOF everysec) mid-burst and a restart on the same directory, --max-deliveries 1: every request answered once, nothing dead-lettered")
        func killedMidBurst() throws {
            let h = try Harness(redisArguments: ["--appendfsync", "everysec"])
            let log = LogRecorder()
            try h.startDaemon(log: log) {
                $0.maxDeliveries = 1
                $0.batchSize = 16
            }
            let total = 6000
            try h.pushBurst("kill", count: total, replyTo: "test:kill")
            try h.wait("the daemon to be partway through the burst") { try h.length("test:kill") > 0 }
            // Writes paused while the daemon holds batches in flight: the kill lands with
            // exactly these held (no commit can take them out of flight before it).
            try h.pauseWritesWithMessagesInFlight(replyList: "test:kill")
            let holders = try h.loopsHoldingMessages()
            #expect(try h.length("coord:requests") > 0, "work was left to take when Redis died")
            let start = log.lines.count
            h.server.kill()
            // Each loop that held messages found Redis gone and retried, more often than
            // --max-deliveries allows deliveries, before Redis comes back.
            try h.wait("the loops holding messages to find Redis gone, twice") {
                try holders.allSatisfy { try log.refusals(of: $0, from: start).count >= 2 }
            }
            try h.server.restart()
            try h.wait("the burst to be answered", timeout: 90) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0 && h.length("test:kill") >= total
            }
            for loop in holders { try log.expectOneLinePerPause(of: loop, from: start) }
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:kill"), count: total)
        }

        @Test("A daemon started while Redis is unreachable stays up, is not healthy, and works as soon as Redis answers")
        func unreachableAtStart() throws {
            let h = try Harness()
            h.server.stop()
            let port = try h.metricsPort()
            try h.startDaemon { $0.metricsPort = port }
            let url = "http://127.0.0.1:\(port)/metrics"
            // Serving metrics, and saying it is not up.
            let first = try PrometheusScrape.scrape(url)
            #expect(first.status == 200)
            #expect(first.value("coordinatord_up") == 0)
            // It tried Redis, and again after a pause, and is still serving: the outage landed.
            try h.wait("the daemon to find Redis unreachable twice") {
                try (PrometheusScrape.scrape(url).value("coordinatord_redis_errors_total") ?? 0) >= 2
            }
            let health = try h.runToEnd(["health", "--redis-url", h.server.url], timeout: 30)
            #expect(health.status != 0, "no healthy daemon while Redis is unreachable")
            try h.server.restart()
            try h.push(Wire.coordinate("late-1", customer: "cust-late", replyTo: "test:late",
                                       [Wire.recommendation("l1", resources: ["i-l"])]))
            let reply = try h.reply(on: "test:late", timeout: 30)
            #expect(reply["ok"] as? Bool == true)
            try h.wait("coordinatord_up to be 1") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 1 }
            #expect(try h.runToEnd(["health", "--redis-url", h.server.url], timeout: 30).status == 0)
        }

        @Test("Redis stalled (DEBUG SLEEP 2.5 s) past the heartbeat TTL (1 s) under two daemons mid-burst: every request answered and done once")
        func stalledPastHeartbeat() throws {
            let h = try Harness(redisArguments: ["--enable-debug-command", "yes"])
            try h.startDaemon { $0.heartbeatTTL = 1; $0.batchSize = 16 }
            try h.startDaemon { $0.heartbeatTTL = 1; $0.batchSize = 16 }
            try h.waitUntilReady()
            let total = 4000
            try h.pushBurst("stall", count: total, replyTo: "test:stall")
            try h.wait("the daemons to be partway through the burst") { try h.length("test:stall") > 0 }
            #expect(try h.length("coord:requests") + h.inflightCount() > 0, "work was left when Redis stalled")
            // Past the heartbeats' TTL: when Redis wakes, both look lapsed to each other, and
            // recovery may hand back what the other still holds; its commit then finds the
            // message gone and writes nothing.
            _ = try h.redis.send("DEBUG", "SLEEP", 2.5)
            try h.wait("the burst to be answered", timeout: 90) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0 && h.length("test:stall") >= total
            }
            try h.settle()
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:stall"), count: total)
            let completed = try h.events().filter { $0["type"] as? String == "coordination.completed" }
            #expect(completed.count == total, "one coordination per request")
        }
    }
}
