import Foundation
import RedisClient
import Testing
import TestSupport

extension RealRedis {
    /// PROTOCOL.md 6 and 7 (v3): a Redis that refuses writes (maxmemory reached with
    /// noeviction) is not a daemon failing its messages. They stay in flight, are retried with
    /// backoff and answered once memory is freed; none is counted toward `poison`.
    @Suite("Redis refusing writes: retried, not counted as deliveries", .serialized)
    struct RedisRefusalTests {
        /// How many times Redis refused a command for being out of memory (INFO errorstats).
        static func oomRefusals(_ h: Harness) throws -> Int {
            let info = try h.redis.send("INFO", "errorstats").string ?? ""
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_OOM:") {
                if let count = line.split(separator: "=").last.flatMap({ Int($0.prefix(while: \.isNumber)) }) { return count }
            }
            return 0
        }

        @Test("maxmemory reached twice mid-burst (--max-deliveries 2): every request answered once, nothing dead-lettered, up falls to 0 and back")
        func outOfMemoryTwice() throws {
            let h = try Harness(redisArguments: ["--maxmemory-policy", "noeviction"])
            let port = try h.metricsPort()
            try h.startDaemon {
                $0.maxDeliveries = 2
                $0.metricsPort = port
                $0.batchSize = 16
            }
            let url = "http://127.0.0.1:\(port)/metrics"
            try h.wait("coordinatord_up to be 1") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 1 }
            let total = 8000
            var answered: [String: Int] = [:]
            for episode in 0..<2 {
                try h.pushBurst("oom\(episode)", count: total / 2, replyTo: "test:oom")
                // Memory runs out while the daemon works through the burst: some answered, some not.
                try h.wait("the daemon to be partway through burst \(episode + 1)") {
                    try h.length("test:oom") > 0
                }
                // The fault lands mid-burst: taking a batch is refused (LMOVE is denied under
                // OOM), while a batch already taken still commits (its acknowledgement, an LREM,
                // is the commit's first write, and Redis checks memory only there).
                let refusalsBefore = try Self.oomRefusals(h)
                _ = try h.redis.send("CONFIG", "SET", "maxmemory", 1)
                try h.wait("Redis to refuse the daemon's writes") { try Self.oomRefusals(h) > refusalsBefore }
                #expect(try h.length("coord:requests") > 0, "Redis refused writes with requests left to take")
                try h.wait("coordinatord_up to fall to 0") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 0 }
                // Longer than --max-deliveries retries take at the first backoff steps.
                Thread.sleep(forTimeInterval: 2)
                _ = try h.redis.send("CONFIG", "SET", "maxmemory", 0)
                try h.wait("burst \(episode + 1) to be answered", timeout: 60) {
                    try h.length("coord:requests") == 0 && h.inflightCount() == 0
                }
                answered.merge(try h.takeAnswers(on: "test:oom")) { $0 + $1 }
            }
            try h.expectAnsweredOnce(answered, count: total)
            try h.wait("coordinatord_up to be 1 again") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 1 }
            let scrape = try PrometheusScrape.scrape(url)
            #expect((scrape.value("coordinatord_redis_errors_total") ?? 0) > 0)
            #expect(scrape.value("coordinatord_dead_letters_total", ["code": "poison"]) == 0)
        }
    
        @Test("Redis turned read-only (a replica, as in a failover) while batches are in flight, --max-deliveries 1: nothing poisoned, every request answered once")
        func readOnlyMidFlight() throws {
            let h = try Harness()
            try h.startDaemon {
                $0.maxDeliveries = 1
                $0.batchSize = 16
            }
            let total = 6000
            try h.pushBurst("ro", count: total, replyTo: "test:ro")
            try h.wait("the daemon to be partway through the burst") { try h.length("test:ro") > 0 }
            // A replica of a master that never answers keeps its data and refuses every write
            // (READONLY) until it is made a master again: a failover as the daemon sees it.
            var caught = false
            for _ in 0..<50 where !caught {
                _ = try h.redis.send("REPLICAOF", "127.0.0.1", 1)
                Thread.sleep(forTimeInterval: 0.05)
                caught = try h.inflightCount() > 0
                if !caught { _ = try h.redis.send("REPLICAOF", "NO", "ONE") }
            }
            #expect(caught, "Redis went read-only while the daemon held messages in flight")
            #expect(try h.length("coord:requests") > 0)
            let held = try h.inflightCount()
            // Several of the daemon's retries (0.1 s doubling) hit the read-only Redis.
            Thread.sleep(forTimeInterval: 2)
            #expect(try h.inflightCount() == held, "nothing left flight while Redis refused writes")
            _ = try h.redis.send("REPLICAOF", "NO", "ONE")
            try h.wait("the burst to be answered", timeout: 90) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0 && h.length("test:ro") >= total
            }
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:ro"), count: total)
        }
    }
}
