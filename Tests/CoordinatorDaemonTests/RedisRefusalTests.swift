import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 6 and 7 (v3): a Redis that refuses writes (maxmemory reached with
    /// noeviction, a read-only replica, a server still loading its data) is not a daemon failing
    /// its messages. They stay in flight, are retried with backoff (one log line per pause) and
    /// answered once Redis takes writes again; none is counted toward `poison`.
    @Suite("Redis refusing writes: retried, not counted as deliveries", .sharesMachine)
    struct RedisRefusalTests {
        /// The intake loops of a daemon with the default 3 workers: they all retry while Redis
        /// refuses (an idle loop's blocking take is a write too).
        static let requestLoops = ["requests-0", "requests-1", "requests-2"]

        @Test("maxmemory reached twice mid-burst (--max-deliveries 2): every request answered once, nothing dead-lettered, up falls to 0 and back")
        func outOfMemoryTwice() throws {
            let h = try Harness(redisArguments: ["--maxmemory-policy", "noeviction"])
            let port = try h.metricsPort()
            let log = LogRecorder()
            try h.startDaemon(log: log) {
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
                let refusalsBefore = try h.errorReplies("OOM")
                let start = log.lines.count
                _ = try h.redis.send("CONFIG", "SET", "maxmemory", 1)
                try h.wait("Redis to refuse the daemon's writes") { try h.errorReplies("OOM") > refusalsBefore }
                #expect(try h.length("coord:requests") > 0, "Redis refused writes with requests left to take")
                try h.wait("coordinatord_up to fall to 0") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 0 }
                // Each loop retried more often than --max-deliveries allows deliveries, as it
                // says in its log: were a refusal a delivery, its messages would be poison now.
                try h.wait("every intake loop refused more than --max-deliveries times") {
                    try Self.requestLoops.allSatisfy { try log.refusals(of: $0, from: start, error: "OOM").count > 2 }
                }
                #expect(try h.deadLetters().isEmpty, "nothing dead-lettered while Redis refused writes")
                _ = try h.redis.send("CONFIG", "SET", "maxmemory", 0)
                try h.wait("burst \(episode + 1) to be answered", timeout: 60) {
                    try h.length("coord:requests") == 0 && h.inflightCount() == 0
                }
                for loop in Self.requestLoops { try log.expectOneLinePerPause(of: loop, from: start) }
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
            let log = LogRecorder()
            try h.startDaemon(log: log) {
                $0.maxDeliveries = 1
                $0.batchSize = 16
            }
            let total = 6000
            try h.pushBurst("ro", count: total, replyTo: "test:ro")
            try h.wait("the daemon to be partway through the burst") { try h.length("test:ro") > 0 }
            // Writes paused while the daemon holds batches in flight; Redis made a replica of a
            // master that never answers (a port held, not listening): it keeps its data and
            // refuses every write (READONLY) until it is made a master again, a failover as
            // the daemon sees it. The paused commits then run, and are refused.
            let held = try h.pauseWritesWithMessagesInFlight(replyList: "test:ro")
            let holders = try h.loopsHoldingMessages()
            let nowhere = try PortReservation()
            defer { nowhere.release() }
            let start = log.lines.count
            _ = try h.redis.send("REPLICAOF", "127.0.0.1", nowhere.port)
            _ = try h.redis.send("CLIENT", "UNPAUSE")
            #expect(try h.length("coord:requests") > 0)
            // Each loop holding messages retried them more often than --max-deliveries allows
            // deliveries (its log says so), and they are all still in flight, none dead.
            try h.wait("the loops holding messages to be refused more than --max-deliveries times") {
                try holders.allSatisfy { try log.refusals(of: $0, from: start, error: "READONLY").count > 2 }
            }
            #expect(try h.inflightCount() == held, "nothing left flight while Redis refused writes")
            #expect(try h.deadLetters().isEmpty)
            _ = try h.redis.send("REPLICAOF", "NO", "ONE")
            try h.wait("the burst to be answered", timeout: 90) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0 && h.length("test:ro") >= total
            }
            for loop in holders { try log.expectOneLinePerPause(of: loop, from: start) }
            // A refused commit is the batch's pause, not a failure of each message in it.
            let perMessage = log.lines.dropFirst(start).filter { $0.message.hasPrefix("commit failed in Redis") }
            #expect(perMessage.isEmpty, "\(perMessage.count) lines like \(perMessage.first.map { "\($0.message) \($0.metadata)" } ?? "")")
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:ro"), count: total)
        }

        @Test("Redis killed mid-flight and loading its data for 6 s or more after the restart (LOADING), --max-deliveries 1: retried, up 0 meanwhile, nothing poisoned, every request answered once")
        func loadingAfterRestart() throws {
            // No automatic AOF rewrite: the test rewrites it once, at the fault.
            let h = try Harness(redisArguments: ["--auto-aof-rewrite-percentage", "0"])
            let port = try h.metricsPort()
            let log = LogRecorder()
            try h.startDaemon(log: log) {
                $0.maxDeliveries = 1
                $0.batchSize = 16
                $0.metricsPort = port
            }
            let url = "http://127.0.0.1:\(port)/metrics"
            let total = 4000
            try h.pushBurst("load", count: total, replyTo: "test:load")
            try h.wait("the daemon to be partway through the burst") { try h.length("test:load") > 0 }
            // Writes paused with messages in flight: the kill lands with exactly these held.
            try h.pauseWritesWithMessagesInFlight(replyList: "test:load")
            let holders = try h.loopsHoldingMessages()
            // Everything rewritten into the AOF's RDB preamble (the pause holds), so that the
            // restart loads it key by key, each `delay` µs late (Redis's key-load-delay debug
            // setting): LOADING for 6 s or more (2 s was over before the sampler read once beside a CPU
            // hog, 1 run in 10), with clients answered every KiB loaded.
            _ = try h.redis.send("BGREWRITEAOF")
            try h.wait("the AOF rewritten") {
                let persistence = try h.info("persistence")
                return persistence["aof_rewrite_in_progress"] == "0" && persistence["aof_rewrite_scheduled"] == "0"
            }
            #expect(try h.info("persistence")["aof_last_bgrewrite_status"] == "ok")
            let keys = try #require(try h.redis.send("DBSIZE").integer)
            let delay = max(1, 6_000_000 / Int(keys))
            let start = log.lines.count
            h.server.kill()
            try h.server.restart(adding: ["--key-load-delay", "\(delay)", "--loading-process-events-interval-bytes", "1024"],
                                 loaded: false)
            #expect(try h.server.isLoading(), "the restarted Redis answers LOADING")
            // While it loads, the loops that held messages are refused LOADING and retry, and
            // the daemon says it is not up.
            try h.wait("the loops holding messages to be refused LOADING") {
                try holders.allSatisfy { try !log.refusals(of: $0, from: start, error: "LOADING").isEmpty }
            }
            // The metrics sampler reads Redis on its own period: `up` turns 0 at its next read,
            // which must come while Redis still loads.
            var up: Double?
            var loadingAtScrape = true
            try h.wait("coordinatord_up 0 while Redis loads", timeout: 10) {
                up = try PrometheusScrape.scrape(url).value("coordinatord_up")
                loadingAtScrape = try h.server.isLoading()
                return up == 0 || !loadingAtScrape
            }
            #expect(loadingAtScrape, "still loading after the scrape")
            #expect(up == 0, "coordinatord_up while Redis loads")
            try h.wait("Redis to finish loading", timeout: 60) { try !h.server.isLoading() }
            let refusedLoading = try h.errorReplies("LOADING")
            #expect(refusedLoading > 0, "Redis answered LOADING \(refusedLoading) times")
            try h.wait("the burst to be answered", timeout: 90) {
                try h.length("coord:requests") == 0 && h.inflightCount() == 0 && h.length("test:load") >= total
            }
            for loop in holders {
                #expect(try log.refusals(of: loop, from: start).count > 1, "\(loop) retried more than --max-deliveries times")
                try log.expectOneLinePerPause(of: loop, from: start)
            }
            try h.expectAnsweredOnce(try h.takeAnswers(on: "test:load"), count: total)
            try h.wait("coordinatord_up to be 1 again") { try PrometheusScrape.scrape(url).value("coordinatord_up") == 1 }
            let after = try PrometheusScrape.scrape(url)
            #expect((after.value("coordinatord_redis_errors_total") ?? 0) > 0)
            #expect(after.value("coordinatord_dead_letters_total", ["code": "poison"]) == 0)
        }
    }
}
