import Crypto
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 6 (v3): every dead letter has one shape, written by one piece of code, and a
    /// size bound of its own whatever the message held.
    @Suite("Dead letters: one shape, bounded", .sharesMachine)
    struct DeadLetterShapeTests {
        @Test("A reply_undeliverable dead letter has the shape of every other: truncated raw with raw_bytes and raw_sha256")
        func undeliverableShape() throws {
            let h = try Harness()
            _ = try h.redis.send("SET", "test:a-string", "not a list")
            try h.startDaemon { $0.deadLetterRawMax = 64 }
            let message = Wire.coordinate("shape-1", customer: "cust-shape", replyTo: "test:a-string",
                                          [Wire.recommendation("s1", resources: ["i-s"])])
            try h.push(message)
            try h.wait("the undeliverable reply's dead letter") { try h.deadLetters().count == 1 }
            let letter = try #require(try h.deadLetters().first)
            let error = try #require(letter["error"] as? [String: Any])
            #expect(error["code"] as? String == "reply_undeliverable")
            #expect((error["message"] as? String)?.contains("test:a-string") == true)
            #expect(letter["queue"] as? String == "coord:requests")
            #expect(letter["at"] is String)
            #expect(letter["truncated"] as? Bool == true)
            #expect(letter["raw_bytes"] as? Int == message.utf8.count)
            let sha = SHA256.hash(data: Data(message.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(letter["raw_sha256"] as? String == sha)
            #expect((letter["raw"] as? String).map { message.hasPrefix($0) } == true)
            // Its effects committed all the same.
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-shape"), "s1").integer == 1)
        }

        @Test("A message of control characters stays within 4/3 of --dead-letter-raw-max plus 4 KiB in its dead letter")
        func controlCharactersBounded() throws {
            let h = try Harness()
            try h.startDaemon()
            let rawMax = 65_536
            // 60,000 bytes of U+0001: valid UTF-8, not JSON, and six bytes each escaped in JSON.
            try h.push(bytes: [UInt8](repeating: 0x01, count: 60_000))
            try h.wait("its dead letter") { try h.length(h.keys.dead) == 1 }
            let stored = try #require(try h.redis.send("LINDEX", h.keys.dead, 0).bytes)
            #expect(stored.count <= rawMax * 4 / 3 + 4096, "a dead letter of \(stored.count) bytes")
            let letter = try Harness.object(stored)
            #expect((letter["error"] as? [String: Any])?["code"] as? String == "invalid_json")
            let base64 = try #require(letter["raw_base64"] as? String)
            #expect(Data(base64Encoded: base64) == Data(repeating: 0x01, count: 60_000))
        }

        @Test("An unknown kind of 100,000 bytes is echoed in its reply cut at 128 bytes")
        func unknownKindEchoedCut() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.json(["kind": String(repeating: "k", count: 100_000), "request_id": "k-1", "reply_to": "test:kind"]))
            let reply = try h.reply(on: "test:kind")
            #expect(reply["ok"] as? Bool == false)
            let kind = try #require(reply["kind"] as? String)
            #expect(kind.utf8.count <= 128 + 3, "kind echoed with \(kind.utf8.count) bytes")
            #expect(kind.hasPrefix("kkkk"))
            let message = try #require((reply["error"] as? [String: Any])?["message"] as? String)
            #expect(message.utf8.count <= 1024)
        }
    }
}
