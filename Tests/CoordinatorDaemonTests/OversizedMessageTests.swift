import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 6 (v3): a message over `--max-message-bytes` is refused without being read
    /// whole; the daemon's memory stays bounded however large the messages are.
    @Suite("Oversized messages refused unread", .sharesMachine)
    struct OversizedMessageTests {
        /// VmHWM (peak resident set) of a process, in bytes.
        static func peakRSS(_ pid: Int32) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
            let kb = try #require(Int(line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? ""))
            return kb * 1024
        }

        /// A JSON request of about `bytes` bytes, its reply_to first.
        static func huge(_ n: Int, bytes: Int) -> [UInt8] {
            let head = Array(#"{"reply_to":"test:huge","request_id":"huge-\#(n)","kind":"coordinate","customer_id":"c","recommendations":[],"pad":""#.utf8)
            return head + [UInt8](repeating: UInt8(ascii: "x"), count: bytes - head.count - 2) + Array(#""}"#.utf8)
        }

        @Test("Six 100 MiB messages: each refused too_large from its first bytes and answered, the daemon's peak RSS under 150 MB, and a small request after them answered")
        func sixHundredMiB() throws {
            let h = try Harness()
            let daemon = try h.launch(["run", "--sim-speed", "0", "--workers", "1"])
            try h.wait("its heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            let size = 100 << 20
            for n in 0..<6 {
                _ = try h.redis.send("LPUSH", "coord:requests", Self.huge(n, bytes: size))
            }
            try h.push(Wire.coordinate("after-huge", customer: "cust-after", replyTo: "test:after",
                                       [Wire.recommendation("a1", resources: ["i-a"])]))
            var answered: Set<String> = []
            for _ in 0..<6 {
                let reply = try h.reply(on: "test:huge", timeout: 60)
                #expect(Harness.code(reply) == "too_large", "\(reply)")
                answered.insert(try #require(reply["request_id"] as? String))
            }
            #expect(answered == Set((0..<6).map { "huge-\($0)" }))
            #expect(try h.reply(on: "test:after", timeout: 60)["ok"] as? Bool == true)
            let letters = try h.deadLetters()
            #expect(letters.count == 6)
            for letter in letters {
                #expect(Harness.code(letter) == "too_large")
                #expect(letter["truncated"] as? Bool == true)
                #expect(letter["raw_bytes"] as? Int == size)
                #expect(letter["raw_sha256"] == nil, "the daemon never read the whole message")
                #expect(((letter["raw"] as? String)?.utf8.count ?? Int.max) <= 65_536)
            }
            let peak = try Self.peakRSS(daemon.processIdentifier)
            print("oversized: the daemon's peak RSS after six 100 MiB messages: \(peak / 1_048_576) MiB")
            #expect(peak < 150_000_000, "peak RSS \(peak / 1_048_576) MiB")
            #expect(try h.inflightCount() == 0)
        }

        @Test("Under --trust an oversized message is dead-lettered but not answered: its reply_to is unverified")
        func oversizedUnderTrust() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            try h.startDaemon {
                $0.trustFile = fixture.path
                $0.maxMessageBytes = 4096
            }
            try h.push(bytes: Self.huge(0, bytes: 10_000))
            try h.wait("its dead letter") { try h.length(h.keys.dead) == 1 }
            #expect(Harness.code(try #require(try h.deadLetters().first)) == "too_large")
            // A reply would have been written in the same commit as the dead letter.
            #expect(try h.length("test:huge") == 0)
            #expect(try h.inflightCount() == 0)
        }
    }
}
