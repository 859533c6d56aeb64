import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// Every key a change script touches is one of its KEYS, and the customer's state keys of
    /// one call share one hash slot (README, "Key layout": the keys outside it on one Redis).
    /// Read off `MONITOR`, which shows the commands a script runs right after its call.
    @Suite("Change scripts touch only the keys they declare", .sharesMachine)
    struct DeclaredKeysTests {
        /// Scripts checked: those converted to declared keys. `commit.lua` (the generic commit
        /// of the changes not yet given scripts of their own) takes its keys in ARGV.
        static let checked: [String: String] = [
            Scripts.coordinate.sha1: "coordinate", Scripts.decide.sha1: "decide", Scripts.takeBatch.sha1: "takeBatch",
            Scripts.gatherActive.sha1: "gatherActive",
        ]

        /// What a change script does to a reply list.
        static let replyCommands: Set<String> = ["LPUSH", "PTTL", "LTRIM", "EXPIRE"]

        /// Starts `redis-cli MONITOR` on the harness's Redis, logging to a file; returns both
        /// once it is attached (the caller stops it).
        static func monitor(_ h: Harness) throws -> (process: Process, log: URL) {
            let log = h.server.directory.appendingPathComponent("monitor.log")
            #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
            monitor.arguments = ["-p", String(h.server.port), "MONITOR"]
            monitor.standardOutput = try FileHandle(forWritingTo: log)
            try monitor.run()
            try h.wait("MONITOR to attach") { try h.redis.send("CLIENT", "LIST", "TYPE", "normal").string?.contains("cmd=monitor") == true }
            return (monitor, log)
        }

        /// Checks every call of the checked scripts in the log: each key it touched is one of its
        /// KEYS (or its reply list, `replyList`), and its keys of each tag family (customer,
        /// approval, plan) share one tag. Returns the calls per script.
        static func check(_ calls: [Monitor.Call], replyList: String) -> [String: Int] {
            var seen: [String: Int] = [:]
            for call in calls {
                guard let name = checked[call.sha] else { continue }
                seen[name, default: 0] += 1
                let declared = Set(call.keys)
                for (command, keys) in call.commands {
                    // The one exception: the reply list, which the daemon's Redis user may
                    // only write, is passed in ARGV (docs/SCRIPTS.md).
                    for key in keys where !(["coordinate", "decide"].contains(name) && key == replyList && replyCommands.contains(command)) {
                        #expect(declared.contains(key), "\(name) ran \(command) on \(key), not among its KEYS \(call.keys)")
                    }
                }
                if name == "coordinate" || name == "decide" {
                    // The customer's keys (all but the exceptions on one Redis) share one tag.
                    let tags = Set(call.keys.compactMap(Monitor.customerTag))
                    #expect(tags.count == 1, "\(name): \(tags)")
                }
                if name == "decide" {
                    // The approval's keys share its tag, the plan's keys the plan's (docs/SCRIPTS.md:
                    // both are outside the customer's tag, an exception of the key layout).
                    for family in ["approval", "plan"] {
                        let tags = Set(call.keys.compactMap { Monitor.tag($0, family: family) })
                        #expect(tags.count <= 1, "\(name): \(family) keys under tags \(tags)")
                    }
                    #expect(call.keys.contains { Monitor.tag($0, family: "approval") != nil }, "\(call.keys)")
                }
            }
            return seen
        }

        @Test("coordinate traffic under MONITOR: new customers, a customer with history, execute_now, approvals, a repeated request_id")
        func coordinateTraffic() throws {
            let h = try Harness()
            try h.startDaemon()
            let (monitor, log) = try Self.monitor(h)
            defer { _ = ChildProcess.stop(monitor) }

            for n in 0..<20 {
                try h.push(Wire.coordinate("new-\(n)", customer: "cust-new-\(n)", replyTo: "test:keys",
                                           [Wire.recommendation("r\(n)", resources: ["i-\(n)", "j-\(n)"])]))
            }
            for n in 0..<10 {
                try h.push(Wire.coordinate("hist-\(n)", customer: "cust-hist", replyTo: "test:keys",
                                           [Wire.recommendation("h\(n)", resources: ["shared"]),
                                            Wire.recommendation("w\(n)", action: "scale_down")]))
            }
            try h.push(Wire.coordinate("now-1", customer: "cust-now", replyTo: "test:keys", executeNow: true,
                                       [Wire.recommendation("n1", resources: ["i-now"])]))
            try h.push(Wire.coordinate("ask-1", customer: "cust-ask", replyTo: "test:keys", autoApprove: false,
                                       [Wire.recommendation("a1", risk: "high", resources: ["i-ask"])]))
            try h.push(Wire.coordinate("new-0", customer: "cust-new-0", replyTo: "test:keys",
                                       [Wire.recommendation("r0", resources: ["i-0", "j-0"])]))
            for _ in 0..<33 { _ = try h.reply(on: "test:keys") }
            try h.settle()

            let calls = Monitor.scriptCalls(try String(contentsOf: log, encoding: .utf8))
            let seen = Self.check(calls, replyList: "test:keys")
            #expect((seen["coordinate"] ?? 0) >= 33, "\(seen)")
            // The log was read right: each of the 32 coordinate calls applied (the repeated
            // request_id is answered from its stored reply, not by this script) ran its guards
            // and writes (a stale one stops after a guard).
            #expect(calls.filter { $0.sha == Scripts.coordinate.sha1 && $0.commands.count >= 5 }.count >= 32)
            #expect((seen["gatherActive"] ?? 0) >= 1, "\(seen)")
            #expect((seen["takeBatch"] ?? 0) >= 1, "\(seen)")
        }

        /// Coordinates one recommendation needing approval; returns the approval id.
        static func pending(_ h: Harness, _ id: String, risk: String = "high", customer: String = "cust-dec",
                            executeNow: Bool = false, resources: [String]? = nil) throws -> String {
            try h.push(Wire.coordinate("req-\(id)", customer: customer, replyTo: "test:setup", executeNow: executeNow,
                                       [Wire.recommendation(id, agent: "perf-agent-1", action: "migrate_database", risk: risk,
                                                            resources: resources ?? ["i-\(id)"])]))
            let result = try #require(try h.reply(on: "test:setup")["result"] as? [String: Any])
            return try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
        }

        @Test("decision traffic under MONITOR: approve (queued and held plans), both votes of a critical one, reject, a late decision, refusals")
        func decisionTraffic() throws {
            let h = try Harness()
            try h.startDaemon()
            let queued = try Self.pending(h, "now", executeNow: true)
            let held = try Self.pending(h, "held")
            let critical = try Self.pending(h, "crit", risk: "critical")
            let rejected = try Self.pending(h, "rej", customer: "cust-rej", resources: ["i-a", "i-b"])
            let late = try Self.pending(h, "late")
            let own = try Self.pending(h, "own")
            // Past its expiry as stored, though not yet in the sweeper's index: the decision
            // finds it due and expires it itself.
            var stored = try Harness.object(try #require(try h.redis.send("GET", h.keys.approval(late)).bytes))
            stored["expires_at"] = "2020-01-01T00:00:00.000Z"
            _ = try h.redis.send("SET", h.keys.approval(late), Wire.json(stored))
            let (monitor, log) = try Self.monitor(h)
            defer { _ = ChildProcess.stop(monitor) }

            func decide(_ id: String, _ decision: String = "approve", user: String = "alice", reason: String? = nil) throws -> [String: Any] {
                var message: [String: Any] = ["approval_id": id, "decision": decision, "user_id": user, "reply_to": "test:keys"]
                if let reason { message["reason"] = reason }
                try h.push(Wire.json(message), to: h.keys.approvals)
                return try h.reply(on: "test:keys")
            }
            func status(_ reply: [String: Any]) -> String? { (reply["result"] as? [String: Any])?["status"] as? String }
            func code(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }

            #expect(status(try decide(queued)) == "approved")
            #expect(status(try decide(held)) == "approved")
            #expect(status(try decide(critical)) == "pending")
            #expect(status(try decide(critical, user: "bob")) == "approved")
            #expect(status(try decide(rejected, "reject", user: "bob", reason: "not now")) == "rejected")
            #expect(code(try decide(late)) == "expired")
            #expect(code(try decide(own, user: "perf-agent-1")) == "forbidden")
            #expect(code(try decide(held, user: "carol")) == "already_processed")
            try h.settle()

            let calls = Monitor.scriptCalls(try String(contentsOf: log, encoding: .utf8))
            let seen = Self.check(calls, replyList: "test:keys")
            #expect((seen["decide"] ?? 0) >= 8, "\(seen)")
            // Each ran its guard, acknowledgement and writes.
            #expect(calls.filter { $0.sha == Scripts.decide.sha1 && $0.commands.count >= 4 }.count == 8)
            // What the decisions left: plans queued and held, the rejected one out of its indexes.
            #expect(try h.zcard(h.keys.pendingApprovals) == 1)  // `own`, refused
            #expect(try h.zcard(h.keys.heldPlans) == 2)  // `held` and the critical one
            #expect(try h.hlen(h.keys.active(customer: "cust-rej")) == 0)
            #expect(try h.redis.send("EXISTS", h.keys.resourceIndex(customer: "cust-rej", resource: "i-a")).integer == 0)
            #expect(try h.redis.send("HEXISTS", h.keys.versions(customer: "cust-rej"), Keys.resourceVersion("i-b")).integer == 0)
            #expect(try h.redis.send("TTL", h.keys.approval(rejected)).integer ?? -1 > 0)
            #expect(try h.redis.send("EXISTS", h.keys.recommendation(customer: "cust-rej", id: "rej")).integer == 1)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-dec"), "late").integer == 0)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-dec"), "own").integer == 1)
        }

        @Test("a signed decision under MONITOR: its replay mark is declared and shares the approval's tag")
        func signedDecision() throws {
            let h = try Harness()
            let fixture = try TrustFixture.standard()
            defer { fixture.remove() }
            try h.startDaemon { $0.trustFile = fixture.path }
            try h.push(try fixture.sign(Wire.coordinate("signed-1", replyTo: "test:setup", [
                Wire.recommendation("s1", agent: "cost-agent-1", action: "migrate_database", risk: "high", resources: ["db-1"]),
            ]), as: "cost-agent-1"))
            let result = try #require(try h.reply(on: "test:setup")["result"] as? [String: Any])
            let id = try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            let (monitor, log) = try Self.monitor(h)
            defer { _ = ChildProcess.stop(monitor) }
            let signed = try fixture.sign(Wire.json(["approval_id": id, "decision": "approve", "user_id": "alice@example.com",
                                                     "reply_to": "test:keys"]), as: "alice@example.com")
            try h.push(signed, to: h.keys.approvals)
            #expect((try h.reply(on: "test:keys")["result"] as? [String: Any])?["status"] as? String == "approved")
            try h.push(signed, to: h.keys.approvals)
            #expect(((try h.reply(on: "test:keys"))["error"] as? [String: Any])?["code"] as? String == "already_processed")
            try h.settle { try fixture.sign($0, as: "carol@example.com") }

            let calls = Monitor.scriptCalls(try String(contentsOf: log, encoding: .utf8))
            let seen = Self.check(calls, replyList: "test:keys")
            // One call ran (the script's first call on a fresh Redis may answer NOSCRIPT, running
            // nothing, and be sent again); the replay is answered without it.
            #expect((seen["decide"] ?? 0) >= 1, "\(seen)")
            let ran = calls.filter { $0.sha == Scripts.decide.sha1 && !$0.commands.isEmpty }
            #expect(ran.count == 1, "\(ran.map { ($0.keys, $0.commands.map(\.0)) })")
            let call = try #require(ran.first)
            #expect(call.keys.contains { $0.hasPrefix(h.keys.approval(id) + ":sig:") }, "\(call.keys)")
        }
    }
}

/// Reads `MONITOR` output: each script call with its KEYS and the commands it ran.
enum Monitor {
    struct Call {
        var sha: String
        var keys: [String]
        var commands: [(String, [String])]
    }

    static func scriptCalls(_ text: String) -> [Call] {
        var calls: [Call] = []
        for line in text.split(separator: "\n") {
            guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]") else { continue }
            let origin = line[line.index(after: open)..<close]
            let args = arguments(line[line.index(after: close)...])
            guard let command = args.first?.uppercased() else { continue }
            if origin.hasSuffix(" lua") {
                guard !calls.isEmpty else { continue }
                calls[calls.count - 1].commands.append((command, keys(of: command, args: Array(args.dropFirst()))))
            } else if command == "EVALSHA", args.count >= 3, let n = Int(args[2]) {
                calls.append(Call(sha: args[1], keys: Array(args.dropFirst(3).prefix(n)), commands: []))
            } else {
                // Another client's command ends the script's run in the log.
                if !calls.isEmpty, calls[calls.count - 1].sha != "" { calls.append(Call(sha: "", keys: [], commands: [])) }
            }
        }
        return calls.filter { !$0.sha.isEmpty }
    }

    /// The keys a command names, for the commands the scripts run.
    static func keys(of command: String, args: [String]) -> [String] {
        switch command {
        case "PUBLISH", "TIME": return []
        case "DEL", "EXISTS": return args
        case "LMOVE", "RPOPLPUSH": return Array(args.prefix(2))
        default: return Array(args.prefix(1))
        }
    }

    /// The hash tag of an approval's or a plan's key (`coord:approval:{id}…`, `coord:plan:{id}…`),
    /// nil for other keys.
    static func tag(_ key: String, family: String) -> String? {
        let head = "coord:\(family):{"
        guard key.hasPrefix(head), let end = key.firstIndex(of: "}") else { return nil }
        return String(key[key.index(key.startIndex, offsetBy: head.count - 1)...end])
    }

    /// The hash tag of a customer's key (`coord:{cust}:…`), nil for other keys.
    static func customerTag(_ key: String) -> String? {
        guard key.hasPrefix("coord:{"), let end = key.firstIndex(of: "}") else { return nil }
        return String(key[key.index(key.startIndex, offsetBy: 6)...end])
    }

    /// The quoted arguments of a MONITOR line (`"SET" "k" "v\"x"`), unescaped.
    static func arguments(_ text: Substring) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        var inside = false
        var bytes = Array(text.utf8)[...]
        while let byte = bytes.popFirst() {
            if !inside {
                if byte == UInt8(ascii: "\"") { inside = true; current = [] }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inside = false
                out.append(String(decoding: current, as: UTF8.self))
            case UInt8(ascii: "\\"):
                guard let next = bytes.popFirst() else { break }
                switch next {
                case UInt8(ascii: "n"): current.append(0x0A)
                case UInt8(ascii: "r"): current.append(0x0D)
                case UInt8(ascii: "t"): current.append(0x09)
                case UInt8(ascii: "x"):
                    let hex = String(decoding: [bytes.popFirst() ?? 0, bytes.popFirst() ?? 0], as: UTF8.self)
                    current.append(UInt8(hex, radix: 16) ?? 0)
                default: current.append(next)
                }
            default:
                current.append(byte)
            }
        }
        return out
    }
}
