import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Server restarts and crashes", .sharesMachine)
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

    @Test("a crash fails the blocked command with .connection; retries fail cleanly, then recover")
    func crash() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            _ = try c.send("SET", "kept", "yes")
            let configuration = server.configuration
            let killer = Background {
                let observer = try RedisConnection(configuration: configuration)
                defer { observer.close() }
                try waitUntilBlocked(observer, command: "blmove")
                observer.close()
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
            // Server down: each attempt fails at connection level, never hangs or traps. (How long
            // the client backs off between attempts is its own business, not pinned here.)
            for _ in 0..<3 {
                #expect(throws: RedisError.connection("127.0.0.1:\(server.port): Connection refused")) {
                    try c.send("PING")
                }
            }
            try server.restart()
            var value: RedisReply?
            for _ in 0..<5 where value == nil { value = try? c.send("GET", "kept") }
            #expect(value == .bulk(bytes("yes")))
        }
    }
}
