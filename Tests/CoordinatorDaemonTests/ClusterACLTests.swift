import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

extension RealRedis {
    /// deploy/redis/users.acl loaded on every node of a real cluster: the daemon runs cluster
    /// mode under its restricted user, and agents, approvers and event consumers reach the
    /// cluster under theirs; no node's ACL LOG records a denial.
    @Suite("Cluster: the shipped Redis users (deploy/redis/users.acl) on every node", .sharesMachine)
    struct ClusterACLTests {
        static let password = "test-password-\(UInt32.random(in: 0...UInt32.max))"

        /// The shipped file with its passwords set and an administrator added (for ACL LOG). The
        /// default user is on while `redis-cli --cluster create` joins the nodes (it connects
        /// without credentials) and is turned off on every node before the daemon starts.
        static func aclFile(in directory: URL) throws -> String {
            let shipped = try String(contentsOf: TrustACLTests.root.appendingPathComponent("deploy/redis/users.acl"), encoding: .utf8)
            #expect(shipped.contains("user default off\n"))
            let placeholders = try NSRegularExpression(pattern: ">CHANGE-ME-[A-Za-z0-9@._-]+")
            var file = placeholders.stringByReplacingMatches(in: shipped, range: NSRange(shipped.startIndex..., in: shipped),
                                                             withTemplate: ">\(password)")
            file = file.replacingOccurrences(of: "user default off\n", with: "user default on nopass ~* &* +@all\n")
            file += "user test-admin on >\(password) ~* &* +@all\n"
            let path = directory.appendingPathComponent("users.acl").path
            try Data(file.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        @Test("the daemon runs cluster mode under its restricted user: requests, approvals and events go through, nothing is denied")
        func daemonUnderACL() throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-acl-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let cluster = try RedisCluster.start(masters: 3, arguments: ["--aclfile", try Self.aclFile(in: directory)])
            defer { cluster.stop() }
            let seeds = cluster.servers.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
            func client(_ user: String) throws -> RedisClusterClient {
                RedisClusterClient(configuration: try RedisConfiguration(url: "redis+cluster://\(user):\(Self.password)@\(seeds)"))
            }
            // As deployed: no anonymous access on any node.
            for server in cluster.servers {
                let node = try cluster.direct(server.port)
                _ = try node.send("ACL", "SETUSER", "default", "off")
                node.close()
                let anonymous = try cluster.direct(server.port)
                #expect(throws: RedisError.self) { try anonymous.send("GET", "coord:x") }
                anonymous.close()
            }
            let agent = try client("cost-agent-1")
            let approver = try client("alice")
            let consumer = try client("events")
            defer { [agent, approver, consumer].forEach { $0.close() } }

            var config = DaemonConfiguration()
            config.redisURL = "redis+cluster://coordinatord:\(Self.password)@\(seeds)"
            config.partitions = 8
            config.simSpeed = 0
            config.heartbeatTTL = 2
            config.planLease = 2
            config.replyPrefix = "replies:"
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }

            // The agent's coordinates for 16 customers (every partition of 8, most likely), each
            // with one low-risk recommendation executed at once and one medium-risk one that
            // waits for approval; replies on the agent's own reply keys.
            var approvals: [String] = []
            for c in 0..<16 {
                let replyTo = "replies:cost-agent-1:r\(c)"
                _ = try agent.send("LPUSH", "coord:requests", Wire.coordinate("r-\(c)", customer: "cust-\(c)", replyTo: replyTo, executeNow: true, [
                    Wire.recommendation("low-\(c)", resources: ["res-low-\(c)"]),
                    Wire.recommendation("mid-\(c)", risk: "medium", resources: ["res-mid-\(c)"]),
                ]))
                let (_, bytes) = try #require(try agent.blockingPop([replyTo], timeout: 30), "no reply to r-\(c)")
                let reply = try Harness.object(bytes)
                #expect(reply["ok"] as? Bool == true, "r-\(c): \(reply)")
                let result = try #require(reply["result"] as? [String: Any])
                approvals.append(try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String))
            }
            // Alice approves each, through coord:approvals, her replies on her own keys.
            for (n, approval) in approvals.enumerated() {
                let replyTo = "replies:alice@example.com:d\(n)"
                _ = try approver.send("LPUSH", "coord:approvals",
                    #"{"approval_id":"\#(approval)","decision":"approve","user_id":"alice@example.com","request_id":"d\#(n)","reply_to":"\#(replyTo)"}"#)
                let (_, bytes) = try #require(try approver.blockingPop([replyTo], timeout: 30), "no reply to decision \(n)")
                let reply = try Harness.object(bytes)
                #expect(reply["ok"] as? Bool == true, "decision \(n): \(reply)")
            }
            // The event consumer reads every partition's stream: 16 × 2 plans completed.
            var completed = 0
            let deadline = Date().addingTimeInterval(30)
            repeat {
                completed = 0
                for p in 0..<config.partitions {
                    for entry in try consumer.send("XRANGE", "coord:{p\(p)}:events:stream", "-", "+").array ?? [] {
                        if try Harness.streamEntry(entry).event["type"] as? String == "plan.completed" { completed += 1 }
                    }
                }
                if completed < 32 { Thread.sleep(forTimeInterval: 0.1) }
            } while completed < 32 && Date() < deadline
            #expect(completed == 32)

            // Nothing was denied on any node (ACL LOG records every NOPERM, key and command).
            for server in cluster.servers {
                let node = try RedisConnection(configuration: RedisConfiguration(
                    endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "test-admin", password: Self.password))
                defer { node.close() }
                let entries = try node.send("ACL", "LOG").array ?? []
                let denied = entries.map { entry in
                    let fields = entry.array ?? []
                    return stride(from: 0, to: fields.count - 1, by: 2).compactMap { i -> String? in
                        guard let name = fields[i].string, ["username", "reason", "object", "context"].contains(name) else { return nil }
                        return "\(name)=\(fields[i + 1].string ?? fields[i + 1].integer.map(String.init) ?? "?")"
                    }.joined(separator: " ")
                }
                #expect(denied.isEmpty, "node :\(server.port) denied: \(denied)")
            }

            // The grant that lets the outbox's script declare a reply list lets nothing read one:
            // not a command, nor a script the daemon's user loads.
            let replies = "replies:cost-agent-1:r0"
            let asDaemon = try RedisConnection(configuration: RedisConfiguration(
                endpoint: try #require(agent.master(forSlot: RedisClusterSlot.of(replies))),
                username: "coordinatord", password: Self.password))
            defer { asDaemon.close() }
            #expect(throws: RedisError.self) { try asDaemon.send("LRANGE", replies, 0, -1) }
            let reader = RedisScript("return redis.call('LRANGE', KEYS[1], 0, -1)")
            #expect(throws: RedisError.self) { try asDaemon.run(reader, keys: [replies], args: []) }
        }
    }
}
