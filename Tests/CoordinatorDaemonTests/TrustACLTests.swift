import Coordination
import Foundation
import Logging
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// deploy/redis/users.acl on a real redis-server: each role can do what it needs and gets NOPERM
    /// for the rest, and the daemon runs the seed's scenarios under its own restricted user.
    @Suite("Trust: least-privilege Redis users (deploy/redis/users.acl)", .sharesMachine)
    struct TrustACLTests {
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        static let password = "test-password-\(UInt32.random(in: 0...UInt32.max))"

        /// The shipped file with its placeholder passwords set, plus (for the test's own inspection
        /// only: ACL LOG) an administrator it adds at the end.
        final class Deployment: @unchecked Sendable {
            let server: RedisServer
            let directory: URL

            init() throws {
                directory = FileManager.default.temporaryDirectory.appendingPathComponent("acl-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                let shipped = try String(contentsOf: TrustACLTests.root.appendingPathComponent("deploy/redis/users.acl"), encoding: .utf8)
                let placeholders = try NSRegularExpression(pattern: ">CHANGE-ME-[A-Za-z0-9@._-]+")
                #expect(placeholders.numberOfMatches(in: shipped, range: NSRange(shipped.startIndex..., in: shipped)) == 4)
                var file = placeholders.stringByReplacingMatches(in: shipped, range: NSRange(shipped.startIndex..., in: shipped),
                                                                 withTemplate: ">\(TrustACLTests.password)")
                file += "user test-admin on >\(TrustACLTests.password) ~* &* +@all\n"
                let path = directory.appendingPathComponent("users.acl").path
                try Data(file.utf8).write(to: URL(fileURLWithPath: path))
                server = try RedisServer.start(arguments: ["--aclfile", path])
            }

            deinit {
                server.stop()
                try? FileManager.default.removeItem(at: directory)
            }

            func connect(_ user: String) throws -> RedisConnection {
                try RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: server.port),
                                                                      username: user, password: TrustACLTests.password))
            }

            var daemonURL: String { "redis://coordinatord:\(TrustACLTests.password)@127.0.0.1:\(server.port)/0" }
        }

        /// The error reply of a command, or nil when it was allowed.
        func denial(_ connection: RedisConnection, _ args: String...) -> String? { denial(connection, args) }

        func denial(_ connection: RedisConnection, _ args: [String]) -> String? {
            do {
                _ = try connection.send(RedisCommand(args[0], arguments: Array(args.dropFirst())))
                return nil
            } catch {
                if case .server(let message) = error { return message }
                return "\(error)"
            }
        }

        func isNoPerm(_ message: String?) -> Bool { message?.hasPrefix("NOPERM") == true }

        @Test("each role gets what it needs and NOPERM for the rest")
        func roles() throws {
            let d = try Deployment()
            let agent = try d.connect("cost-agent-1")
            let approver = try d.connect("alice")
            let consumer = try d.connect("events")
            let daemon = try d.connect("coordinatord")
            defer { [agent, approver, consumer, daemon].forEach { $0.close() } }

            // The default user is off: no anonymous access at all.
            let anonymous = try RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: d.server.port)))
            #expect(denial(anonymous, "GET", "coord:plan:x")?.hasPrefix("NOAUTH") == true)
            anonymous.close()

            // Agent: pushes requests and results; pops its own step list and reply keys.
            #expect(denial(agent, "LPUSH", "coord:requests", "{}") == nil)
            #expect(denial(agent, "LPUSH", "coord:steps:results", "{}") == nil)
            #expect(denial(daemon, "LPUSH", "coord:agent:cost-agent-1:steps", "step") == nil)
            #expect(denial(agent, "RPOP", "coord:agent:cost-agent-1:steps") == nil)
            #expect(denial(agent, "BRPOP", "replies:cost-agent-1:r1", "0.01") == nil)
            #expect(isNoPerm(denial(agent, "LPUSH", "coord:approvals", "approve a-1 alice")))
            #expect(isNoPerm(denial(agent, "RPOP", "coord:agent:prod-db-agent:steps")))
            #expect(isNoPerm(denial(agent, "LRANGE", "coord:agent:prod-db-agent:steps", "0", "-1")))
            #expect(isNoPerm(denial(agent, "LPUSH", "coord:agent:prod-db-agent:steps", "{}")))
            #expect(isNoPerm(denial(agent, "RPOP", "coord:requests")))
            #expect(isNoPerm(denial(agent, "LPUSH", "coord:agent:cost-agent-1:steps", "fake step")))
            #expect(isNoPerm(denial(agent, "GET", "coord:plan:p-1")))
            #expect(isNoPerm(denial(agent, "RPOP", "replies:alice@example.com:r1")))
            // Its pattern is its own namespace, replies:<principal id>:, not every id it prefixes.
            #expect(isNoPerm(denial(agent, "RPOP", "replies:cost-agent-10:r1")))
            #expect(isNoPerm(denial(agent, "RPOP", "replies:cost-agent-1")))
            #expect(isNoPerm(denial(agent, "SET", "coord:approval:a-1", "{}")))
            #expect(isNoPerm(denial(agent, "DEL", "coord:requests")))
            #expect(isNoPerm(denial(agent, "XRANGE", "coord:events:stream", "-", "+")))

            // Approver: pushes decisions; pops only her reply keys, under her principal id.
            #expect(denial(approver, "LPUSH", "coord:approvals", "{}") == nil)
            #expect(denial(approver, "RPOP", "replies:alice@example.com:d1") == nil)
            #expect(isNoPerm(denial(approver, "RPOP", "replies:alice:d1")))
            #expect(isNoPerm(denial(approver, "LPUSH", "coord:requests", "{}")))
            #expect(isNoPerm(denial(approver, "LPUSH", "coord:steps:results", "{}")))
            #expect(isNoPerm(denial(approver, "RPOP", "coord:approvals")))
            #expect(isNoPerm(denial(approver, "RPOP", "replies:cost-agent-1:r1")))
            #expect(isNoPerm(denial(approver, "GET", "coord:approval:a-1")))

            // Consumer: reads the stream, subscribes; writes nothing.
            #expect(denial(consumer, "XRANGE", "coord:events:stream", "-", "+") == nil)
            #expect(denial(consumer, "XREAD", "COUNT", "1", "STREAMS", "coord:events:stream", "0") == nil)
            for write in [["LPUSH", "coord:requests", "{}"], ["LPUSH", "coord:approvals", "{}"], ["SET", "x", "1"],
                          ["XADD", "coord:events:stream", "*", "type", "forged"], ["PUBLISH", "coord:events", "forged"],
                          ["DEL", "coord:events:stream"], ["XTRIM", "coord:events:stream", "MAXLEN", "0"]] {
                #expect(isNoPerm(denial(consumer, write)), "\(write)")
            }
            #expect(isNoPerm(denial(consumer, "GET", "coord:plan:p-1")))
            #expect(isNoPerm(denial(consumer, "SUBSCRIBE", "coord:other")))
            #expect(denial(consumer, "SUBSCRIBE", "coord:events") == nil)

            // Daemon: its prefix, writes to reply lists, its channel; no dangerous or admin command.
            #expect(denial(daemon, "SET", "coord:x", "1") == nil)
            #expect(denial(daemon, "LPUSH", "replies:cost-agent-1:r1", "{}") == nil)
            #expect(isNoPerm(denial(daemon, "RPOP", "replies:cost-agent-1:r1")), "it writes replies, never reads them")
            #expect(isNoPerm(denial(daemon, "SET", "other:x", "1")))
            #expect(isNoPerm(denial(daemon, "PUBLISH", "other", "x")))
            for dangerous in [["FLUSHALL"], ["KEYS", "*"], ["INFO"], ["CONFIG", "GET", "*"], ["CLIENT", "LIST"],
                              ["ACL", "LIST"], ["LASTSAVE"], ["SHUTDOWN"], ["SCRIPT", "FLUSH"]] {
                #expect(isNoPerm(denial(daemon, dangerous)), "\(dangerous)")
            }
        }

        @Test("the daemon's user allows every command the daemon sends (its sources and Lua scripts), and none is @dangerous or @admin")
        func daemonCommandSet() throws {
            let d = try Deployment()
            let admin = try d.connect("test-admin")
            defer { admin.close() }
            let sent = try Self.commandsInSources()
            #expect(sent.count > 20, "found \(sent.sorted())")
            let forbidden = Set(try ["dangerous", "admin"].flatMap { category in
                try #require(try admin.send("ACL", "CAT", category).array).map { try #require($0.string) }
            })
            // ACL DRYRUN needs real arguments; the user's rules say it outright. Redis writes them
            // back in its own shortest form ("+@hash -hlen ..." once most of a category is
            // allowed), so a command is allowed when named, or in an allowed category and not
            // taken out again.
            let rules = try #require(try admin.send("ACL", "GETUSER", "coordinatord").array)
            let words = (rules.indices.first { rules[$0].string == "commands" }.flatMap { rules[$0 + 1].string } ?? "")
                .split(separator: " ").map(String.init)
            var viaCategory = Set<String>()
            for word in words where word.hasPrefix("+@") && word != "+@all" {
                viaCategory.formUnion(try #require(try admin.send("ACL", "CAT", String(word.dropFirst(2))).array).map { try #require($0.string) })
            }
            for command in sent.sorted() {
                let name = command.lowercased()
                let allowed = words.contains("+\(name)") || (viaCategory.contains(name) && !words.contains("-\(name)"))
                #expect(allowed, "the daemon sends \(command); its user's rules: \(words.joined(separator: " "))")
                #expect(!forbidden.contains(name), "\(command) is @dangerous or @admin")
            }
        }

        /// Command names the daemon sends: first arguments of `RedisCommand(…)`, `send(…)`,
        /// `write(…)` and Lua's `redis.call(…)`/`redis.pcall(…)` in the daemon's and the client's
        /// sources and its `.lua` scripts, less the commit script's pseudo-commands.
        static func commandsInSources() throws -> Set<String> {
            let pattern = try NSRegularExpression(pattern: #"(?:RedisCommand|send|write|redis\.p?call)\(\s*["']([A-Z]+)["']"#)
            // The commit script's pseudo-commands (`op == 'EVENT'`): they expand to real ones, found too.
            let pseudo = try NSRegularExpression(pattern: #"op == '([A-Z]+)'"#)
            var pseudoOps: Set<String> = []
            var found: Set<String> = ["EVALSHA", "SCRIPT|LOAD"]
            for folder in ["Sources/CoordinatorDaemon", "Sources/RedisClient"] {
                let base = root.appendingPathComponent(folder)
                let files = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
                // The cluster client is not used by the daemon yet (docs/CLUSTER.md).
                for file in files where ["swift", "lua"].contains(file.pathExtension) && !file.path.contains("SimulatedAgent")
                    && !file.path.contains("RedisSubscriber") && !file.path.contains("/Cluster/") {
                    let text = try String(contentsOf: file, encoding: .utf8)
                    for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                        if let range = Range(match.range(at: 1), in: text) { found.insert(String(text[range])) }
                    }
                    for match in pseudo.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                        if let range = Range(match.range(at: 1), in: text) { pseudoOps.insert(String(text[range])) }
                    }
                }
            }
            // AUTH is always allowed; SCRIPT is allowed as SCRIPT|LOAD.
            #expect(pseudoOps.contains("EVENT"), "the commit script's pseudo-commands were found")
            return found.subtracting(["AUTH", "SCRIPT"]).subtracting(pseudoOps)
        }

        @Test("the daemon runs the seed's three scenarios end to end under its restricted user, with --reply-prefix")
        func seedScenarios() throws {
            let d = try Deployment()
            let agent = try d.connect("cost-agent-1")
            let approver = try d.connect("alice")
            let consumer = try d.connect("events")
            let admin = try d.connect("test-admin")
            defer { [agent, approver, consumer, admin].forEach { $0.close() } }
            var config = DaemonConfiguration()
            config.redisURL = d.daemonURL
            config.simSpeed = 0
            config.heartbeatTTL = 2
            config.planLease = 2
            config.replyPrefix = "replies:"
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }

            func push(_ name: String) throws -> [String: Any] {
                // The fixtures answer on test:replies:…; here the agent's own reply keys.
                let request = try fixture(name).replacingOccurrences(of: "test:replies:", with: "replies:cost-agent-1:")
                _ = try agent.send("LPUSH", "coord:requests", request)
                let replyKey = try #require(try Harness.object(Array(request.utf8))["reply_to"] as? String)
                guard let (_, bytes) = try agent.blockingPopRight(replyKey, timeout: 20) else {
                    throw HarnessError.timeout("no reply on \(replyKey)")
                }
                return try Harness.object(bytes)
            }
            func events() throws -> [[String: Any]] {
                try #require(try consumer.send("XRANGE", "coord:events:stream", "-", "+").array).map { try Harness.streamEntry($0).event }
            }
            func waitForEvent(_ type: String, plan: String) throws {
                let deadline = Date().addingTimeInterval(20)
                while Date() < deadline {
                    if try events().contains(where: { $0["type"] as? String == type && $0["plan_id"] as? String == plan }) { return }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                throw HarnessError.timeout("\(type) of plan \(plan)")
            }

            // 1: a resource conflict; the better one is kept and waits for approval.
            let one = try #require(try push("scenario1-conflict")["result"] as? [String: Any])
            #expect(one["conflicts_detected"] as? Int == 1)
            #expect(one["approvals_required"] as? Int == 1)

            // 2: high risk; alice approves (her reply on her own key); the plan runs to completion.
            let two = try #require(try push("scenario2-approval")["result"] as? [String: Any])
            let approvalID = try #require((two["approvals"] as? [[String: Any]])?.first?["id"] as? String)
            // With the people's command, connected as her Redis user, under the shipped reply
            // prefix: its reply key is in her namespace, replies:alice@example.com:.
            let approve = Process()
            approve.executableURL = Harness.binary
            approve.arguments = ["approve", approvalID, "--user", "alice@example.com", "--reply-prefix", "replies:", "--json"]
            approve.environment = ChildProcess.environment(
                ["REDIS_URL": "redis://alice:\(Self.password)@127.0.0.1:\(d.server.port)/0"])
            let output = Pipe()
            approve.standardOutput = output
            approve.standardError = FileHandle.nullDevice
            let deadline = try ChildProcess.run(approve, deadline: 60)
            let printed = output.fileHandleForReading.readDataToEndOfFile()
            try deadline.wait()
            #expect(approve.terminationStatus == 0, "\(String(decoding: printed, as: UTF8.self))")
            let approved = try #require(try Harness.object(Array(printed.split(separator: 0x0A).first ?? []))["result"] as? [String: Any])
            #expect(approved["status"] as? String == "approved")
            try waitForEvent("plan.completed", plan: try #require(approved["plan_id"] as? String))

            // 3: a failing step rolls the plan back.
            let three = try #require(try push("scenario3-rollback")["result"] as? [String: Any])
            let planID = try #require((three["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            try waitForEvent("plan.rolled_back", plan: planID)

            // Nothing the daemon did was refused by Redis along the way.
            let log = try #require(try admin.send("ACL", "LOG").array)
            let denied = log.compactMap { entry -> String? in
                guard let fields = entry.array else { return nil }
                var user = "", object = ""
                for index in stride(from: 0, to: fields.count - 1, by: 2) {
                    if fields[index].string == "username" { user = fields[index + 1].string ?? "" }
                    if fields[index].string == "object" { object = fields[index + 1].string ?? "" }
                }
                return user == "coordinatord" ? object : nil
            }
            #expect(denied.isEmpty, "the daemon was refused: \(denied)")
        }
    }
}
