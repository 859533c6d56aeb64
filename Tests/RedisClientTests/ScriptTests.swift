import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Lua scripts", .sharesMachine)
struct ScriptTests {
    @Test("SHA1 matches Redis's and the standard test vectors")
    func sha1() throws {
        #expect(RedisScript("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(RedisScript("abc").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        // Longer than one 64-byte block, and not ASCII.
        let long = "return '" + String(repeating: "a", count: 1000) + "é'"
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            for source in ["return 1", "return redis.call('GET', KEYS[1])", long] {
                #expect(try c.send("SCRIPT", "LOAD", source).string == RedisScript(source).sha1)
            }
        }
    }

    @Test("run, SCRIPT FLUSH, run again: transparently reloaded")
    func runAndReload() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try c.run(script, keys: ["counter"], args: [5]) == .integer(5))
            #expect(try c.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
            _ = try c.send("SCRIPT", "FLUSH")
            #expect(try c.run(script, keys: ["counter"], args: [2]) == .integer(7))
            // A script error is thrown as .server, and does not trigger a reload loop.
            let failing = RedisScript("return redis.error_reply('BOOM custom failure')")
            #expect(throws: RedisError.server("BOOM custom failure")) { try c.run(failing, keys: [], args: []) }
            // A broken script's SCRIPT LOAD error is reported.
            let invalid = RedisScript("this is not lua")
            do {
                _ = try c.run(invalid, keys: [], args: [])
                Issue.record("invalid script ran")
            } catch let error as RedisError {
                #expect(error.serverCode == "ERR")
            }
        }
    }

    @Test("NOSCRIPT inside a pipeline: only those commands are re-sent, replies in place")
    func pipelineReload() throws {
        try withServer { server in
            let c = try server.client()
            defer { c.close() }
            let push = RedisScript("return redis.call('RPUSH', KEYS[1], ARGV[1])")
            let get = RedisScript("return redis.call('LRANGE', KEYS[1], 0, -1)")
            c.register(push)
            _ = try c.send("SCRIPT", "FLUSH")
            let replies = try c.pipeline([
                push.command(keys: ["l"], args: ["a"]),
                RedisCommand("RPUSH", "l", "b"),
                push.command(keys: ["l"], args: ["c"]),
                get.command(keys: ["l"], args: []),
                RedisCommand("EVALSHA", "0000000000000000000000000000000000000000", 0),
                RedisScript("not lua at all").command(keys: [], args: []),
            ])
            // Plain RPUSH ran in the first round trip, the scripts in the second, in their order.
            #expect(replies[0] == .integer(2))
            #expect(replies[1] == .integer(1))
            #expect(replies[2] == .integer(3))
            #expect(replies[3] == .array([.bulk(bytes("b")), .bulk(bytes("a")), .bulk(bytes("c"))]))
            #expect(replies[4].errorMessage?.hasPrefix("NOSCRIPT") == true, "unknown scripts keep their error")
            #expect(replies[5].errorMessage?.contains("Error compiling script") == true, "a broken source reports its SCRIPT LOAD error: \(replies[5])")
            // Now loaded: a second pipeline needs no repair.
            #expect(try c.send("SCRIPT", "EXISTS", push.sha1, get.sha1) == .array([.integer(1), .integer(1)]))
        }
    }
}
