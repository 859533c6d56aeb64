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

        @Test("Three 100 MiB step results: each dead-lettered too_large from its first bytes, the step they answer fails at once, the daemon's peak RSS under 150 MB")
        func sixHundredMiBStepResults() throws {
            let h = try Harness()
            // A long plan lease: three 100 MiB pushes stall this test's Redis (AOF always) for
            // seconds under load, and a lapsed lease fails the step as worker_lost instead.
            let daemon = try h.launch(["run", "--sim-speed", "0", "--executor", "agents", "--step-timeout", "120", "--plan-lease", "60"])
            try h.wait("its heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            try h.push(Wire.coordinate("plan", customer: "cust-plan", replyTo: "test:plan", executeNow: true,
                                       [Wire.recommendation("spot", agent: "big-agent", action: "migrate_to_spot", resources: ["i-1"])]))
            let result = try #require((try h.reply(on: "test:plan"))["result"] as? [String: Any])
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            let step = try h.reply(on: h.keys.agentSteps("big-agent"), timeout: 20)
            // As an agent writes it, its identity first.
            let identity = ["plan_id", "step_id", "attempt"].map { "\"\($0)\":\"\(step[$0] as? String ?? "")\"" }
            let head = Array(("{" + identity.joined(separator: ",") + ",\"rollback\":false,\"ok\":true,\"result\":{\"blob\":\"").utf8)
            let size = 100 << 20
            let message = head + [UInt8](repeating: UInt8(ascii: "R"), count: size - head.count - 3) + Array("\"}}".utf8)
            for _ in 0..<3 { _ = try h.redis.send("LPUSH", h.keys.stepResults, message) }
            try h.wait("three dead letters", timeout: 60) { try h.length(h.keys.dead) == 3 }
            let letters = try h.deadLetters()
            for letter in letters {
                #expect(Harness.code(letter) == "too_large")
                #expect(letter["raw_bytes"] as? Int == size)
                #expect(letter["raw_sha256"] == nil, "the daemon never read the whole result")
            }
            var plan: [String: Any] = [:]
            try h.wait("plan \(planID) to end", timeout: 30) {
                plan = try h.plan(planID) ?? [:]
                return ["failed", "rolled_back"].contains(plan["status"] as? String ?? "")
            }
            let first = try #require((plan["steps"] as? [[String: Any]])?.first)
            #expect((first["error"] as? String)?.hasPrefix("too_large") == true, "\(first["error"] ?? "none")")
            let peak = try Self.peakRSS(daemon.processIdentifier)
            print("oversized: the daemon's peak RSS after three 100 MiB step results: \(peak / 1_048_576) MiB")
            #expect(peak < 150_000_000, "peak RSS \(peak / 1_048_576) MiB")
            #expect(try h.length(h.keys.stepResults) == 0)
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
