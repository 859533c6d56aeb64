import Foundation
import RedisClient
import TestSupport
import Testing

@Suite("Blocking commands", .serialized)
struct BlockingTests {
    @Test("BLMOVE times out with nil, and is woken by an LPUSH from another connection")
    func blmove() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            #expect(try c.blockingMove(from: "q", to: "inflight", timeout: 0.1) == nil)
            let configuration = server.configuration
            let pusher = Background {
                Thread.sleep(forTimeInterval: 0.2)
                let other = try RedisConnection(configuration: configuration)
                defer { other.close() }
                _ = try other.send("LPUSH", "q", [0, 1, 2] as [UInt8])
            }
            let moved = try c.blockingMove(from: "q", to: "inflight", timeout: 10)
            try pusher.wait()
            #expect(moved == [0, 1, 2])
            #expect(try c.send("LRANGE", "inflight", 0, -1) == .array([.bulk([0, 1, 2])]))
            #expect(try c.send("LLEN", "q") == .integer(0))
        }
    }

    @Test("BLPOP returns the key and value, nil on timeout")
    func blpop() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            #expect(try c.blockingPop(["a", "b"], timeout: 0.1) == nil)
            _ = try c.send("RPUSH", "b", "x")
            let popped = try c.blockingPop(["a", "b"], timeout: 1)
            #expect(popped?.key == "b")
            #expect(popped?.value == bytes("x"))
        }
    }

    @Test("interrupt() wakes a BLMOVE blocked forever; the connection then reconnects")
    func interrupt() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let waker = Background {
                Thread.sleep(forTimeInterval: 0.2)
                c.interrupt()
            }
            #expect(throws: RedisError.closed) { try c.blockingMove(from: "never", to: "x", timeout: 0) }
            try waker.wait()
            #expect(!c.isConnected)
            #expect(try c.send("PING") == .status("PONG"))
            // An interrupt with no call running fails the next call, then all is normal.
            c.interrupt()
            #expect(throws: RedisError.closed) { try c.send("PING") }
            #expect(try c.send("PING") == .status("PONG"))
        }
    }

    @Test("close() is idempotent and later commands throw .closed until reconnect()")
    func close() throws {
        try withServer { server in
            let c = try server.client()
            c.close()
            c.close()
            #expect(!c.isConnected)
            #expect(throws: RedisError.closed) { try c.send("PING") }
            try c.reconnect()
            #expect(try c.send("PING") == .status("PONG"))
            c.close()
        }
    }
}
