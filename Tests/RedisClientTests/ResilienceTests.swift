import Foundation
import RedisClient
import TestSupport
import Testing

@Suite("Server restarts and crashes", .serialized)
struct ResilienceTests {
    @Test("restart in the middle of use: the next command succeeds and the data survived")
    func restart() throws {
        try withServer { server in
            let c = try RedisConnection(configuration: RedisConfiguration(url: server.url))
            defer { c.close() }
            _ = try c.send("RPUSH", "jobs", "a", "b")
            try server.restart()
            #expect(try c.send("LRANGE", "jobs", 0, -1) == .array([.bulk(bytes("a")), .bulk(bytes("b"))]))
            #expect(try c.pipeline([RedisCommand("RPUSH", "jobs", "c")]) == [.integer(3)])
        }
    }

    @Test("a crash fails the blocked command with .connection; retries back off, then recover")
    func crash() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            _ = try c.send("SET", "kept", "yes")
            let killer = Background {
                Thread.sleep(forTimeInterval: 0.2)
                server.kill()
            }
            do {
                _ = try c.blockingMove(from: "q", to: "p", timeout: 0)
                Issue.record("BLMOVE returned after the server was killed")
            } catch let error as RedisError {
                guard case .connection(let message) = error else { Issue.record("\(error)"); return }
                #expect(message.hasPrefix("127.0.0.1:\(server.port): "))
            }
            try killer.wait()
            #expect(!c.isConnected)
            // Server down: each attempt fails at connection level; from the second consecutive
            // failed reconnect on, attempts sleep first (50 ms, 100 ms, ...).
            let start = Date()
            for _ in 0..<3 {
                #expect(throws: RedisError.connection("127.0.0.1:\(server.port): Connection refused")) {
                    try c.send("PING")
                }
            }
            #expect(Date().timeIntervalSince(start) >= 0.14, "backoff of 50 + 100 ms before the 2nd and 3rd attempts")
            try server.restart()
            var value: RedisReply?
            for _ in 0..<5 where value == nil { value = try? c.send("GET", "kept") }
            #expect(value == .bulk(bytes("yes")))
        }
    }
}
