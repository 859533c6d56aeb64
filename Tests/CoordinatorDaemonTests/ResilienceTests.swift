import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Nothing lost, nothing twice", .sharesMachine)
    struct ResilienceTests {
        /// Reply lists keep their newest 1,000 replies (PROTOCOL.md 2.1), so a bulk run spreads
        /// its replies over lists of at most 500 each.
        static let perReplyList = 500

        static func replyLists(_ count: Int) -> [String] {
            (0...(max(count - 1, 0) / perReplyList)).map { "test:bulk:\($0)" }
        }

        /// Replies written so far, over all the bulk reply lists.
        func repliesSoFar(_ h: Harness, count: Int) throws -> Int {
            try Self.replyLists(count).reduce(0) { $0 + (try h.length($1)) }
        }

        /// Pushes `count` small coordinate requests (distinct customers) in pipelines.
        func pushRequests(_ h: Harness, count: Int, prefix: String) throws {
            var commands: [RedisCommand] = []
            for n in 0..<count {
                let message = Wire.coordinate("\(prefix)-\(n)", customer: "c-\(prefix)-\(n)",
                                              replyTo: "test:bulk:\(n / Self.perReplyList)",
                                              [Wire.recommendation("r", resources: ["i-\(n)"])])
                commands.append(RedisCommand("LPUSH", "coord:requests", message))
                if commands.count == 500 {
                    _ = try h.redis.pipeline(commands)
                    commands.removeAll()
                }
            }
            if !commands.isEmpty { _ = try h.redis.pipeline(commands) }
        }

        /// Every reply to the `count` requests, exactly once each, with nothing late after them; then
        /// queues and in-flight lists are empty, and every request has exactly one
        /// `coordination.completed` (one customer per request).
        func expectExactlyOnce(_ h: Harness, prefix: String, count: Int) throws {
            let replies = try h.collectReplies(on: Self.replyLists(count), count: count, timeout: 90)
            let ids = replies.map { $0["request_id"] as? String ?? "?" }
            #expect(ids.count == count)
            #expect(Set(ids).count == ids.count, "duplicated replies")
            #expect(Set(ids) == Set((0..<count).map { "\(prefix)-\($0)" }))
            #expect(replies.allSatisfy { $0["ok"] as? Bool == true })
            try h.wait("in-flight lists to empty") { try h.inflightCount() == 0 }
            #expect(try h.length(h.keys.requests) == 0)
            var completed: [String: Int] = [:]
            for event in try h.events() where event["type"] as? String == "coordination.completed" {
                completed[event["customer_id"] as? String ?? "?", default: 0] += 1
            }
            #expect(completed.count == count)
            #expect(completed.values.allSatisfy { $0 == 1 }, "a request completed twice")
        }

        /// Stops the daemon (SIGSTOP) at a moment when it holds messages in flight and not every
        /// reply has come, so the fault that follows lands mid-batch. Returns the in-flight count.
        func freezeMidBatch(_ h: Harness, _ process: Process, count: Int, leavingQueued: Bool = false) throws -> Int {
            try h.wait("the daemon to be busy", timeout: 60) {
                guard try repliesSoFar(h, count: count) > 0, try !leavingQueued || h.length(h.keys.requests) > 0 else { return false }
                try Freeze.stop(process, h)
                let inflight = try h.inflightCount()
                if inflight > 0 { return true }
                kill(process.processIdentifier, SIGCONT)
                return false
            }
            let inflight = try h.inflightCount()
            #expect(inflight > 0)
            #expect(try repliesSoFar(h, count: count) < count, "the fault must land before every reply is written")
            return inflight
        }

        @Test("two daemons share thousands of requests, each processed exactly once")
        func twoDaemons() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            try h.waitUntilReady()
            try pushRequests(h, count: 4000, prefix: "two")
            // Counted before the replies are settled (the marker is one more request).
            try h.expectEveryDaemonWorked(total: 4000)
            try expectExactlyOnce(h, prefix: "two", count: 4000)
        }

        @Test("a daemon killed with SIGKILL mid-batch: its in-flight messages are recovered, none twice")
        func sigkill() throws {
            let h = try Harness()
            let process = try h.launch(["run", "--heartbeat-ttl", "2", "--sim-speed", "0"])
            try pushRequests(h, count: 3000, prefix: "kill")
            _ = try freezeMidBatch(h, process, count: 3000)
            ChildProcess.stop(process, signal: SIGKILL)
            #expect(try h.inflightCount() > 0, "the killed daemon's batch is still in flight")
            try h.startDaemon { $0.heartbeatTTL = 2 }
            try expectExactlyOnce(h, prefix: "kill", count: 3000)
        }

        @Test("Redis restarted under load: the daemon reconnects, loses and repeats nothing")
        func redisRestart() throws {
            let h = try Harness()
            let process = try h.launch(["run", "--sim-speed", "0"])
            try pushRequests(h, count: 3000, prefix: "restart")
            _ = try freezeMidBatch(h, process, count: 3000)
            try h.server.restart()
            // The in-flight lists survived the restart (AOF): the daemon holds work across it.
            #expect(try h.inflightCount() > 0)
            kill(process.processIdentifier, SIGCONT)
            try expectExactlyOnce(h, prefix: "restart", count: 3000)
            #expect(process.isRunning)
        }

        @Test("SIGTERM while busy: exits 0, hands back what it holds, and the next daemon does it")
        func sigterm() throws {
            let h = try Harness()
            // The backlog first: a daemon that keeps pace with the pushes never has work queued
            // behind its batch, and the freeze below waits for exactly that.
            try pushRequests(h, count: 5000, prefix: "term")
            let process = try h.launch(["run", "--sim-speed", "0"])
            _ = try freezeMidBatch(h, process, count: 5000, leavingQueued: true)
            kill(process.processIdentifier, SIGTERM)
            kill(process.processIdentifier, SIGCONT)
            #expect(ChildProcess.waitForExit(process, timeout: 30))
            #expect(process.terminationStatus == 0)
            #expect(process.terminationReason == .exit)
            // A clean stop leaves nothing in flight, and work remains for the next daemon.
            #expect(try h.inflightCount() == 0)
            // SIGTERM stops intake after the batch in hand: the backlog stays for the next daemon.
            #expect(try h.length(h.keys.requests) > 0, "the stopping daemon took no new batches")
            #expect(try h.scanKeys(h.keys.worker("*")).isEmpty, "a stopped daemon's heartbeat is gone")
            try h.startDaemon()
            try expectExactlyOnce(h, prefix: "term", count: 5000)
        }

        @Test("coordinatord health follows the heartbeat")
        func health() throws {
            let h = try Harness()
            #expect(try h.runToEnd(["health"]).status == 1)
            try h.startDaemon()
            try h.wait("heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            #expect(try h.runToEnd(["health"]).status == 0)
            h.stopDaemons()
            #expect(try h.runToEnd(["health"]).status == 1)
        }
    }
}
