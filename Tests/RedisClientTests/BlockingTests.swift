import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Blocking commands", .sharesMachine)
struct BlockingTests {
    @Test("BLMOVE times out with nil, and is woken by an LPUSH from another connection")
    func blmove() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            #expect(try c.blockingMove(from: "q", to: "inflight", timeout: 0.1) == nil)
            let configuration = server.configuration
            let pusher = Background {
                let other = try RedisConnection(configuration: configuration)
                defer { other.close() }
                // Push only once the server shows the BLMOVE blocked: the pop must be woken.
                try waitUntilBlocked(other, command: "blmove")
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
            let configuration = server.configuration
            let waker = Background {
                let other = try RedisConnection(configuration: configuration)
                defer { other.close() }
                try waitUntilBlocked(other, command: "blmove")
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

/// Waits until the server lists a client blocked in `command` (CLIENT LIST: `flags=b`,
/// `cmd=<command>`): proof that a blocking call is really blocked, where a sleep only hopes so.
func waitUntilBlocked(_ observer: RedisConnection, command: String, timeout: Double = 20) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let clients = try observer.send("CLIENT", "LIST").string ?? ""
        let blocked = clients.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.contains("cmd=\(command)") && fields.contains { $0.hasPrefix("flags=") && $0.contains("b") }
        }
        if blocked { return }
        Thread.sleep(forTimeInterval: 0.005)
    }
    throw BlockedTimeout(command: command)
}

struct BlockedTimeout: Error, CustomStringConvertible {
    let command: String
    var description: String { "no client blocked in \(command)" }
}
