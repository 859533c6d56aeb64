import Foundation
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// The one unit and environment file in deploy/systemd, run as systemd would run them (the
    /// unit's `Environment=`, then the environment file over it, then ExecStart's flags), against
    /// a real Redis.
    @Suite("The shipped unit and environment file, run", .sharesMachine)
    struct ShippedConfigurationTests {
        static let systemd = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/systemd")

        /// `KEY=value` lines, comments and blank lines skipped.
        static func assignments(_ lines: [Substring]) -> [String: String] {
            var found: [String: String] = [:]
            for raw in lines {
                let line = raw.trimmingCharacters(in: .whitespaces)
                guard !line.isEmpty, !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
                found[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
            return found
        }

        @Test("they start the daemon with --reply-prefix replies:, so a reply_to outside it gets nothing written")
        func replyPrefix() throws {
            let h = try Harness()
            let unit = try String(contentsOf: Self.systemd.appendingPathComponent("coordinatord.service"), encoding: .utf8)
            let envFile = try String(contentsOf: Self.systemd.appendingPathComponent("coordinatord.env"), encoding: .utf8)
            let unitLines = unit.split(separator: "\n")
            var environment = Self.assignments(unitLines.filter { $0.hasPrefix("Environment=") }.map { $0.dropFirst("Environment=".count) })
            environment.merge(Self.assignments(envFile.split(separator: "\n"))) { _, file in file }
            environment["REDIS_URL"] = h.server.url
            #expect(environment["COORD_REPLY_PREFIX"] == "replies:")
            let exec = try #require(unitLines.first { $0.hasPrefix("ExecStart=") })
            var arguments = exec.split(separator: " ").dropFirst().map(String.init)
            // The metrics port of the unit may be taken on this machine: a free one instead.
            if let index = arguments.firstIndex(of: "--metrics-port") { arguments[index + 1] = "\(try h.metricsPort())" }

            let cli = CLI(redisURL: h.server.url)
            let daemon = try cli.start(arguments, environment: environment)
            defer { daemon.stop() }
            try h.wait("a heartbeat from the shipped configuration (stderr: \(daemon.errors))") {
                try h.redis.send("KEYS", "coord:workers:*").array?.isEmpty == false
            }

            // An application's queue, named as a reply_to: left as it was.
            for n in 0..<5 { _ = try h.redis.send("LPUSH", "app:jobs", "job-\(n)") }
            try h.push(#"{"kind":"list_approvals","customer_id":"c","request_id":"outside","reply_to":"app:jobs"}"#)
            try h.push(#"{"kind":"list_approvals","customer_id":"c","request_id":"inside","reply_to":"replies:test:1"}"#)
            let reply = try h.reply(on: "replies:test:1")
            #expect(reply["ok"] as? Bool == true, "\(reply)")
            #expect(try h.length("app:jobs") == 5)
            #expect(try h.redis.send("TTL", "app:jobs").integer == -1)
        }
    }
}
