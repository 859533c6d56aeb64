import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Replies and commands", .sharesMachine)
struct ReplyTests {
    @Test("every reply type round-trips")
    func replyTypes() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            #expect(try c.send("SET", "k", "v") == .status("OK"))
            #expect(try c.send("PING").string == "PONG")
            #expect(try c.send("INCRBY", "n", 41) == .integer(41))
            #expect(try c.send("INCRBY", "n", Int64(-42)).integer == -1)
            #expect(try c.send("GET", "k") == .bulk(bytes("v")))
            #expect(try c.send("GET", "k").string == "v")
            #expect(try c.send("GET", "missing").isNull)
            #expect(try c.send("LRANGE", "missing", 0, -1) == .array([]))
            #expect(try c.send("SET", "empty", "") == .status("OK"))
            #expect(try c.send("GET", "empty") == .bulk([]))
            // Nested arrays, with nil and integers inside, from a script.
            let nested = try c.send("EVAL", "return {1, 'two', {3, {'four'}}, {}, false}", 0)
            #expect(nested == .array([.integer(1), .bulk(bytes("two")), .array([.integer(3), .array([.bulk(bytes("four"))])]), .array([]), .null]))
            // An error reply is thrown with Redis's message...
            #expect(throws: RedisError.server("ERR unknown command 'NOPE', with args beginning with: 'x' ")) {
                try c.send("NOPE", "x")
            }
            do {
                _ = try c.send("INCR", "k")
                Issue.record("INCR on a string succeeded")
            } catch let error as RedisError {
                #expect(error.serverCode == "ERR")
                #expect(error.description.contains("not an integer"))
            }
            // ...the connection stays usable, and in a pipeline it is returned in place.
            let replies = try c.pipeline([RedisCommand("INCR", "k"), RedisCommand("ECHO", "after")])
            #expect(replies[0].errorMessage?.hasPrefix("ERR value is not an integer") == true)
            #expect(replies[1] == .bulk(bytes("after")))
            #expect(c.isConnected)
        }
    }

    @Test("binary payloads: NUL bytes and all 256 byte values")
    func binary() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let all = (0...255).map { UInt8($0) }
            let payload = all + [0, 0, 13, 10, 0] + all.reversed()
            let key: [UInt8] = [0, 1, 13, 10, 255, 0]
            #expect(try c.send("SET", key, payload) == .status("OK"))
            #expect(try c.send("GET", key).bytes == payload)
            #expect(try c.send("STRLEN", key).integer == Int64(payload.count))
            #expect(try c.send("LPUSH", "list", payload, ContiguousArray(all)).integer == 2)
            #expect(try c.send("LRANGE", "list", 0, -1) == .array([.bulk(all), .bulk(payload)]))
            #expect(try c.send("GET", key).string == nil, "invalid UTF-8 has no string form")
            let big = [UInt8](repeating: 0xAB, count: 1 << 20) + [0]
            _ = try c.send("SET", "big", big)
            #expect(try c.send("GET", "big").bytes == big)
            // Larger than the encoder keeps between commands: it grows, then shrinks back.
            let huge = [UInt8](repeating: 7, count: 5 << 20)
            _ = try c.send("SET", "huge", huge)
            #expect(try c.send("STRLEN", "huge") == .integer(Int64(huge.count)))
            #expect(try c.send("GET", "huge").bytes == huge)
        }
    }

    @Test("a 10,000-command pipeline returns the replies in order")
    func bigPipeline() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let commands = (0..<10_000).map { i in
                i % 2 == 0 ? RedisCommand("RPUSH", "seq", i) : RedisCommand("ECHO", "e\(i)")
            }
            let replies = try c.pipeline(commands)
            #expect(replies.count == 10_000)
            for (i, reply) in replies.enumerated() {
                let expected: RedisReply = i % 2 == 0 ? .integer(Int64(i / 2 + 1)) : .bulk(bytes("e\(i)"))
                if reply != expected {
                    Issue.record("reply \(i) is \(reply), expected \(expected)")
                    break
                }
            }
            let stored = try c.send("LRANGE", "seq", 0, -1).array?.compactMap(\.string)
            #expect(stored == stride(from: 0, to: 10_000, by: 2).map(String.init))
            #expect(try c.pipeline([]) == [])
        }
    }

    @Test("argument encodings")
    func arguments() throws {
        #expect(RedisCommand("SET", "k", 5).arguments == [bytes("SET"), bytes("k"), bytes("5")])
        #expect(1.0.redisBytes == bytes("1"))
        #expect(0.25.redisBytes == bytes("0.25"))
        #expect(0.1.redisBytes == bytes("0.1"))
        #expect((-2.5).redisBytes == bytes("-2.5"))
        #expect(Double.infinity.redisBytes == bytes("inf"))
        #expect(Substring("abc").redisBytes == bytes("abc"))
        #expect(Int64.min.redisBytes == bytes("-9223372036854775808"))
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            // Doubles read back exactly by Redis.
            for value in [0.1, 1e-5, 123456.789, 1e300] {
                _ = try c.send("ZADD", "z", value, "m")
                #expect(try c.send("ZSCORE", "z", "m").string.flatMap(Double.init) == value)
            }
            #expect(try c.send(RedisCommand(arguments: [bytes("ECHO"), []])) == .bulk([]))
        }
    }
}
