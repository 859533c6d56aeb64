import Foundation
import RedisClient
import Testing
import TestSupport

@Suite("Nothing lost, nothing twice", .serialized)
struct ResilienceTests {
    /// Reply lists keep their newest 1,000 replies (PROTOCOL.md 2.1), so a bulk run spreads
    /// its replies over lists of at most 500 each.
    static let perReplyList = 500

    /// Pushes `count` small coordinate requests (distinct customers) in pipelines.
    func pushRequests(_ h: Harness, count: Int, prefix: String, replyTo: String = "test:bulk") throws {
        var commands: [RedisCommand] = []
        for n in 0..<count {
            let message = Wire.coordinate("\(prefix)-\(n)", customer: "c-\(prefix)-\(n)", replyTo: "\(replyTo):\(n / Self.perReplyList)",
                                          [Wire.recommendation("r", resources: ["i-\(n)"])])
            commands.append(RedisCommand("LPUSH", "coord:requests", message))
            if commands.count == 500 {
                _ = try h.redis.pipeline(commands)
                commands.removeAll()
            }
        }
        if !commands.isEmpty { _ = try h.redis.pipeline(commands) }
    }

    /// Reads every reply on the list until `count` arrived, and returns their request ids.
    func collect(_ h: Harness, count: Int, on list: String = "test:bulk", timeout: Double = 60) throws -> [String] {
        var ids: [String] = []
        let lists = (0...(max(count - 1, 0) / Self.perReplyList)).map { "\(list):\($0)" }
        let deadline = Date().addingTimeInterval(timeout)
        while ids.count < count, Date() < deadline {
            do {
                let reply = try h.redis.send(RedisCommand(arguments: (["BRPOP"] + lists + ["1"]).map { Array($0.utf8) }))
                guard let parts = reply.array, parts.count == 2, let value = parts[1].bytes else { continue }
                ids.append(try Harness.object(value)["request_id"] as? String ?? "?")
            } catch let error as RedisError {
                if case .connection = error { Thread.sleep(forTimeInterval: 0.1); continue }
                // A restarted Redis answers LOADING while it reads its AOF back.
                if case .server(let message) = error, message.hasPrefix("LOADING") { Thread.sleep(forTimeInterval: 0.1); continue }
                throw error
            }
        }
        return ids
    }

    func expectExactlyOnce(_ ids: [String], prefix: String, count: Int) {
        #expect(ids.count == count)
        #expect(Set(ids).count == ids.count, "duplicated replies")
        #expect(Set(ids) == Set((0..<count).map { "\(prefix)-\($0)" }))
    }

    @Test("two daemons share thousands of requests, each processed exactly once")
    func twoDaemons() throws {
        let h = try Harness()
        try h.startDaemon()
        try h.startDaemon()
        try pushRequests(h, count: 4000, prefix: "two")
        let ids = try collect(h, count: 4000)
        expectExactlyOnce(ids, prefix: "two", count: 4000)
        // nothing arrives after the last
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try h.length("test:bulk:0") == 0)
        let completed = try h.events().filter { $0["type"] as? String == "coordination.completed" }
        #expect(completed.count == 4000)
    }

    @Test("a daemon killed with SIGKILL mid-batch: its in-flight messages are recovered, none twice")
    func sigkill() throws {
        let h = try Harness()
        let process = try h.launch(["run", "--heartbeat-ttl", "2", "--sim-speed", "0"])
        try pushRequests(h, count: 3000, prefix: "kill")
        try h.wait("some replies", timeout: 30) { try h.length("test:bulk:0") > 200 }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try h.startDaemon { $0.heartbeatTTL = 2 }
        let ids = try collect(h, count: 3000)
        expectExactlyOnce(ids, prefix: "kill", count: 3000)
    }

    @Test("Redis restarted under load: the daemon reconnects, loses and repeats nothing")
    func redisRestart() throws {
        let h = try Harness()
        try h.startDaemon()
        try pushRequests(h, count: 3000, prefix: "restart")
        try h.wait("some replies", timeout: 30) { try h.length("test:bulk:0") > 100 }
        try h.server.restart()
        let ids = try collect(h, count: 3000)
        expectExactlyOnce(ids, prefix: "restart", count: 3000)
    }

    @Test("SIGTERM while busy: exits 0, and what it had not finished is done by the next daemon")
    func sigterm() throws {
        let h = try Harness()
        let process = try h.launch(["run", "--sim-speed", "0"])
        try pushRequests(h, count: 3000, prefix: "term")
        try h.wait("some replies", timeout: 30) { try h.length("test:bulk:0") > 100 }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(process.terminationReason == .exit)
        // A clean stop leaves nothing in flight and no heartbeat.
        let inflight = try h.redis.send("KEYS", "coord:inflight:*").array ?? []
        for key in inflight.compactMap(\.string) { #expect(try h.length(key) == 0, "\(key)") }
        try h.startDaemon()
        let ids = try collect(h, count: 3000)
        expectExactlyOnce(ids, prefix: "term", count: 3000)
    }

    @Test("coordinatord health follows the heartbeat")
    func health() throws {
        let h = try Harness()
        let before = try h.launch(["health"])
        before.waitUntilExit()
        #expect(before.terminationStatus == 1)
        try h.startDaemon()
        try h.wait("heartbeat") { try h.redis.send("KEYS", "coord:workers:*").array?.isEmpty == false }
        let during = try h.launch(["health"])
        during.waitUntilExit()
        #expect(during.terminationStatus == 0)
        h.stopDaemons()
        let after = try h.launch(["health"])
        after.waitUntilExit()
        #expect(after.terminationStatus == 1)
    }
}
