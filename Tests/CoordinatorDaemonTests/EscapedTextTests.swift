import CoordinatorDaemon
import Foundation
import Testing
import TestSupport
import TestTraits

/// The one escaping function (PROTOCOL.md section 8, v3), by itself.
@Suite("Text shown to people: DisplayText.escaped")
struct DisplayTextTests {
    @Test("control characters, C1 and bidirectional overrides become \\uXXXX; everything else is kept")
    func escapes() {
        #expect(DisplayText.escaped("plain ünïcode ✓ text") == "plain ünïcode ✓ text")
        #expect(DisplayText.escaped("a\u{1B}]0;x\u{07}b") == "a\\u001b]0;x\\u0007b")
        #expect(DisplayText.escaped("\n\r\t\u{0}\u{1F}") == "\\u000a\\u000d\\u0009\\u0000\\u001f")
        #expect(DisplayText.escaped("\u{7F}\u{80}\u{9B}\u{9F}\u{A0}") == "\\u007f\\u0080\\u009b\\u009f\u{A0}")
        #expect(DisplayText.escaped("\u{202A}\u{202E}\u{2066}\u{2069}\u{2067}") == "\\u202a\\u202e\\u2066\\u2069\\u2067")
        #expect(DisplayText.escaped("\u{2029}\u{200B}\u{206A}") == "\u{2029}\u{200B}\u{206A}")
        #expect(DisplayText.escaped(bytes: [0x41, 0xFF, 0x1B, 0x5B, 0xC3, 0xA9, 0xE2, 0x80]) == "A\\xff\\u001b[é\\xe2\\x80")
    }
}

extension RealRedis {
    /// An ESC/OSC sequence in `kind`, a rejection reason, a raw message or a plan must not reach
    /// people's terminals verbatim, nor a `request_id` holding `\n` forge a log line.
    /// The built binary, over a real Redis: what it prints holds no control character that came
    /// from a client, only its `\u001b` spelling.
    @Suite("Text shown to people is escaped (attack 6)", .sharesMachine)
    struct EscapedTextTests {
        /// Sets the window title, then clears the screen and homes the cursor.
        static let hostile = "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}[H\u{202E}evil"

        private func expectClean(_ result: CLI.Result, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            // Not a terminal: the commands print no colour of their own, so any ESC came from a client.
            for scalar in ["\u{1B}", "\u{07}", "\u{202E}"] {
                #expect(!result.out.contains(scalar), "\(what) printed \(scalar.unicodeScalars.first!.value) verbatim:\n\(result.out)",
                        sourceLocation: sourceLocation)
            }
            #expect(result.out.contains("\\u001b"), "\(what) does not show the escape escaped:\n\(result.out)", sourceLocation: sourceLocation)
        }

        @Test("dead list, dead show (raw and raw_base64), events with a rejection reason, and plan show escapes, not the bytes")
        func commands() throws {
            let h = try Harness()
            try h.startDaemon()
            let cli = CLI(redisURL: h.server.url)

            // A kind that is an OSC and an erase: refused, dead-lettered with its raw message.
            try h.push(Wire.json(["kind": Self.hostile, "request_id": "esc-1"]))
            // Bytes that are not UTF-8 around the escape: kept as raw_base64.
            try h.push(bytes: [0xFF, 0xFE] + Array("\u{1B}[2J not json".utf8))
            try h.wait("two dead letters") { try h.length(h.keys.dead) == 2 }

            let list = try cli.run(["dead", "list"])
            #expect(list.status == 0, "\(list)")
            expectClean(list, "dead list")
            // One holds raw, the other raw_base64 (which is which depends on the order they were taken).
            var both = ""
            for n in ["0", "1"] {
                let shown = try cli.run(["dead", "show", n])
                #expect(shown.status == 0, "\(shown)")
                expectClean(shown, "dead show \(n)")
                both += shown.out
            }
            #expect(both.contains("\\u001b]0;pwned\\u0007\\u001b[2J"), "\(both)")
            #expect(both.contains("\\xff\\xfe\\u001b[2J not json"), "the message decoded from raw_base64:\n\(both)")

            // A rejection reason, as an approver (or anyone who can push a decision) gives it.
            try h.push(Wire.coordinate("esc-2", replyTo: "test:esc", autoApprove: false,
                                       [Wire.recommendation("rec-esc", risk: "high", resources: ["esc"])]))
            let result = try #require(try h.reply(on: "test:esc")["result"] as? [String: Any])
            let approval = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            let rejected = try cli.run(["reject", approval, "--user", "ops@example.com", "--reason", "no \(Self.hostile)"])
            #expect(rejected.status == 0, "\(rejected)")
            expectClean(rejected, "reject")
            _ = try h.waitForEvent("approval.rejected") { $0["type"] as? String == "approval.rejected" }
            let events = try cli.run(["events"])
            #expect(events.status == 0, "\(events)")
            expectClean(events, "events")

            // A plan as stored, with an agent's step error and a rollback reason holding escapes.
            let planID = UUID().uuidString.lowercased()
            let plan: [String: Any] = [
                "id": planID, "status": "rolled_back", "customer_id": "cust-1", "recommendation_id": "rec-esc",
                "rollback_reason": "step failed: \(Self.hostile)",
                "steps": [["action": "scale_up", "agent_id": "cost-agent-1", "status": "failed", "error": Self.hostile,
                           "duration_ms": 5, "started_at": "2026-12-07T00:00:00.000Z"]],
            ]
            _ = try h.redis.send("SET", h.keys.plan(planID), Wire.json(plan))
            let planned = try cli.run(["plan", planID])
            #expect(planned.status == 0, "\(planned)")
            expectClean(planned, "plan")
        }

        @Test("a request_id holding \\n cannot forge a line of the text log")
        func logLine() throws {
            let h = try Harness()
            let cli = CLI(redisURL: h.server.url)
            let daemon = try cli.start(["run", "--log-format", "text", "--sim-speed", "0"])
            defer { daemon.stop() }
            try h.wait("the daemon to start") { daemon.errors.contains("starting") }
            let forged = "2026-12-07T00:00:00.000Z ERROR forged line"
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "c", "request_id": "x\n\(forged)\u{1B}[2J"]))
            try h.wait("the refusal to be logged") { daemon.errors.contains("forged line") }
            let lines = daemon.errors.split(separator: "\n")
            #expect(!lines.contains { $0.hasPrefix(forged) }, "a forged log line:\n\(daemon.errors)")
            #expect(!daemon.errors.contains("\u{1B}"), "an ESC in the log:\n\(daemon.errors)")
            #expect(lines.contains { $0.contains("x\\u000a\(forged)\\u001b[2J") }, "\(daemon.errors)")
        }
    }
}
