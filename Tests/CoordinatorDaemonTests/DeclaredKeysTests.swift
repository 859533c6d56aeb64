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
            Scripts.coordinate.sha1: "coordinate", Scripts.takeBatch.sha1: "takeBatch",
            Scripts.gatherActive.sha1: "gatherActive",
        ]

        /// What a change script does to a reply list.
        static let replyCommands: Set<String> = ["LPUSH", "PTTL", "LTRIM", "EXPIRE"]

        @Test("coordinate traffic under MONITOR: new customers, a customer with history, execute_now, approvals, a repeated request_id")
        func coordinateTraffic() throws {
            let h = try Harness()
            try h.startDaemon()
            let log = h.server.directory.appendingPathComponent("monitor.log")
            #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
            monitor.arguments = ["-p", String(h.server.port), "MONITOR"]
            monitor.standardOutput = try FileHandle(forWritingTo: log)
            try monitor.run()
            defer { _ = ChildProcess.stop(monitor) }
            try h.wait("MONITOR to attach") { try h.redis.send("CLIENT", "LIST", "TYPE", "normal").string?.contains("cmd=monitor") == true }

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
            var seen: [String: Int] = [:]
            for call in calls {
                guard let name = Self.checked[call.sha] else { continue }
                seen[name, default: 0] += 1
                let declared = Set(call.keys)
                for (command, keys) in call.commands {
                    // The one exception: the reply list, which the daemon's Redis user may
                    // only write, is passed in ARGV (docs/SCRIPTS.md).
                    for key in keys where !(name == "coordinate" && key == "test:keys" && Self.replyCommands.contains(command)) {
                        #expect(declared.contains(key), "\(name) ran \(command) on \(key), not among its KEYS \(call.keys)")
                    }
                }
                if name == "coordinate" {
                    // The customer's keys (all but the exceptions on one Redis) share one tag.
                    let tags = Set(call.keys.compactMap(Monitor.customerTag))
                    #expect(tags.count == 1, "\(tags)")
                }
            }
            #expect((seen["coordinate"] ?? 0) >= 33, "\(seen)")
            // The log was read right: each of the 32 coordinate calls applied (the repeated
            // request_id is answered from its stored reply, not by this script) ran its guards
            // and writes (a stale one stops after a guard).
            #expect(calls.filter { $0.sha == Scripts.coordinate.sha1 && $0.commands.count >= 5 }.count >= 32)
            #expect((seen["gatherActive"] ?? 0) >= 1, "\(seen)")
            #expect((seen["takeBatch"] ?? 0) >= 1, "\(seen)")
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
