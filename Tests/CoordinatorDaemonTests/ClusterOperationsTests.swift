import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// The commands for people (`approvals`, `approve`, `reject`, `plan`, `dead`) and the web
/// console's pages on a real 3-master Redis Cluster, with a daemon in cluster mode: they read
/// the partitions (PROTOCOL.md section 11, docs/CLUSTER.md) as they read one Redis.
extension RealRedis {
    @Suite("Operator commands and the console on a Redis Cluster", .sharesMachine)
    struct ClusterOperationsTests {
        static let partitions = 8

        static func partition(_ customer: String) -> Int {
            Int(RedisClusterSlot.crc16(Array(customer.utf8))) % partitions
        }

        /// A medium-risk request of two recommendations on one resource: `rec-a` (the better
        /// ranked) waits for a person, `rec-b` is discarded for the conflict.
        static func conflicting(_ customer: String, replyTo: String) -> String {
            Wire.coordinate("req-\(customer)", customer: customer, replyTo: replyTo, autoApprove: false, [
                Wire.recommendation("rec-a", action: "scale_down", risk: "medium", resources: ["db-1"], priority: 9),
                Wire.recommendation("rec-b", action: "scale_down", risk: "medium", resources: ["db-1"], priority: 1),
            ])
        }

        /// The approval id a `coordinate` reply names.
        static func approvalID(_ client: RedisClusterClient, replyTo: String) throws -> String {
            let reply = try Harness.object(try #require(try client.blockingPop([replyTo], timeout: 30), "no reply on \(replyTo)").value)
            let approvals = (reply["result"] as? [String: Any])?["approvals"] as? [[String: Any]]
            return try #require(approvals?.first?["id"] as? String, "\(reply)")
        }

        @Test("approvals, approve, reject, plan, dead and the console read every partition")
        func commandsAndConsoleOnACluster() throws {
            let cluster = try RedisCluster.start(masters: 3)
            defer { cluster.stop() }
            var config = DaemonConfiguration()
            config.redisURL = cluster.url
            config.partitions = Self.partitions
            config.simSpeed = 0
            config.heartbeatTTL = 2
            config.planLease = 2
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }
            let cli = CLI(redisURL: cluster.url)
            let env = ["COORD_PARTITIONS": "\(Self.partitions)"]

            // Two customers in different partitions, each with a medium-risk approval.
            let customer = "cust-ops", other = "cust-ops-2", third = "cust-ops-4"
            #expect(Set([customer, other, third].map(Self.partition)).count == 3)
            _ = try client.send("LPUSH", "coord:requests", Self.conflicting(customer, replyTo: "replies:ops"))
            _ = try client.send("LPUSH", "coord:requests", Self.conflicting(other, replyTo: "replies:ops2"))
            let approval = try Self.approvalID(client, replyTo: "replies:ops")
            let otherApproval = try Self.approvalID(client, replyTo: "replies:ops2")
            let k = Self.partition(customer)
            #expect(approval.hasPrefix("\(k)."))

            // `approvals` lists both, from both partitions; --customer only the one.
            let listed = try cli.run(["approvals", "--json"], environment: env)
            #expect(listed.status == 0, "\(listed)")
            #expect(Set(try listed.jsonLines().compactMap { $0["id"] as? String }) == [approval, otherApproval], "\(listed)")
            let table = try cli.run(["approvals", "--customer", customer], environment: env)
            #expect(table.out.contains(String(approval.prefix(8))) && !table.out.contains(String(otherApproval.prefix(8))), "\(table)")

            // The console, read-only, on the same cluster.
            let reservation = try PortReservation(forListener: true)
            defer { reservation.release() }
            let port = reservation.port
            let web = try cli.start(["web", "--port", "\(port)", "--partitions", "\(Self.partitions)", "--allow-unsigned"])
            defer { ChildProcess.stop(web.process) }
            try Self.wait("the console to answer", timeout: 15) { (try? Self.get(port, "/static/style.css"))?.status == 200 }
            let overview = try Self.get(port, "/")
            #expect(overview.status == 200 && overview.body.contains("<strong id=\"pending-count\">2</strong>"), "\(overview.body)")
            #expect(overview.body.contains("\(Self.partitions) of \(Self.partitions) partitions held"), "\(overview.body)")
            let approvalsPage = try Self.get(port, "/approvals")
            #expect(approvalsPage.body.contains("data-approval=\"\(approval)\"") && approvalsPage.body.contains("data-approval=\"\(otherApproval)\""),
                    "\(approvalsPage.body)")
            // Its page: the recommendation, and the conflict it won (rec-b discarded), read from
            // its partition's event stream.
            let approvalPage = try Self.get(port, "/approvals/\(approval)")
            #expect(approvalPage.status == 200 && approvalPage.body.contains("data-status=\"pending\""), "\(approvalPage.body)")
            let conflicts = try #require(approvalPage.body.range(of: "<table id=\"conflicts\">").map { String(approvalPage.body[$0.lowerBound...]) },
                                         "\(approvalPage.body)")
            #expect(conflicts.contains("<code>rec-b</code>") && conflicts.contains("discarded: conflict<"), "\(conflicts.prefix(2000))")

            // `approve` by a prefix of the id: the decision goes through coord:approvals, the
            // reply comes back on the command's own key; the plan appears in the partition.
            let approved = try cli.run(["approve", String(approval.prefix(10)), "--user", "ops@example.com"], environment: env)
            #expect(approved.status == 0 && approved.out.hasPrefix("approved \(approval)"), "\(approved)")
            let planID = try #require(approved.out.components(separatedBy: "; plan ").last?.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(planID.hasPrefix("\(k)."), "\(approved)")
            let rejected = try cli.run(["reject", otherApproval, "--user", "ops@example.com", "--reason", "not now"], environment: env)
            #expect(rejected.status == 0 && rejected.out.hasPrefix("rejected \(otherApproval)"), "\(rejected)")
            let none = try cli.run(["approvals"], environment: env)
            #expect(none.out == "no pending approvals\n", "\(none)")

            // A decision on the console (as the user its proxy names) takes the same way.
            _ = try client.send("LPUSH", "coord:requests", Self.conflicting(third, replyTo: "replies:ops3"))
            let thirdApproval = try Self.approvalID(client, replyTo: "replies:ops3")
            // A session of the test's own (64 hex digits): the page's CSRF token is for it.
            let session = "cw_session=" + String(repeating: "5e", count: 32)
            let page = try Self.request("GET", port, "/approvals/\(thirdApproval)", headers: ["Cookie": session])
            let token = try #require(page.body.range(of: "<meta name=\"csrf-token\" content=\"").map { String(page.body[$0.upperBound...].prefix { $0 != "\"" }) })
            let decided = try Self.request("POST", port, "/approvals/\(thirdApproval)/decide",
                                           headers: ["Cookie": session, "X-CSRF-Token": token, "X-Forwarded-User": "ops@example.com",
                                                     "Content-Type": "application/json"],
                                           body: #"{"decision":"reject","reason":"on the console"}"#)
            #expect(decided.status == 200 && decided.body.contains(#""status":"rejected""#) && decided.body.contains(#""ok":true"#), "\(decided)")
            let rejectedThird = try #require(try client.send("GET", "coord:{p\(Self.partition(third))}:approval:{\(thirdApproval)}").bytes)
            #expect(try Harness.object(rejectedThird)["rejected_by"] as? String == "ops@example.com")

            // `plan <id>` reads it from the partition its id names.
            let plan = try cli.run(["plan", planID, "--json"], environment: env)
            #expect(plan.status == 0, "\(plan)")
            let planObject = try #require(try plan.jsonLines().first)
            #expect(planObject["id"] as? String == planID && planObject["customer_id"] as? String == customer, "\(plan)")
            let shown = try cli.run(["plan", planID], environment: env)
            #expect(shown.out.contains("plan \(planID)") && shown.out.contains("recommendation rec-a of \(customer)"), "\(shown)")
            #expect(try cli.run(["plan", "\(k).00000000-0000-0000-0000-000000000000"], environment: env).status == 1)
            try Self.wait("the plan on the console's plans page", timeout: 15) {
                (try? Self.get(port, "/plans"))?.body.contains("data-plan=\"\(planID)\"") == true
            }
            #expect(try Self.get(port, "/plans/\(planID)").body.contains("data-plan=\"\(planID)\""))

            // A message that is not JSON goes to the partition its bytes pick, and is
            // dead-lettered there; an older entry sits in the global coord:dead.
            let garbage = "not json {\(UUID().uuidString)"
            let d = Int(RedisClusterSlot.crc16(Array(garbage.utf8))) % Self.partitions
            let older = #"{"queue":"coord:requests","raw":"older","error":{"code":"invalid_json","message":"by hand"},"at":"2026-01-01T00:00:00.000Z"}"#
            _ = try client.send("RPUSH", "coord:dead", older)
            _ = try client.send("LPUSH", "coord:requests", garbage)
            try Self.wait("the dead letter in partition \(d)", timeout: 15) {
                try client.send("LLEN", "coord:{p\(d)}:dead").integer == 1
            }
            let dead = try cli.run(["dead", "--json"], environment: env)
            let letters = try dead.jsonLines()
            #expect(letters.map { $0["raw"] as? String } == ["older", garbage], "\(dead)")
            #expect(letters.map { $0["partition"] as? Int } == [nil, d] && letters.map { $0["index"] as? Int } == [0, 0], "\(dead)")
            let deadTable = try cli.run(["dead", "list"], environment: env)
            #expect(deadTable.lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("\(d):0 ") }, "\(deadTable)")
            let deadShown = try cli.run(["dead", "show", "\(d):0"], environment: env)
            #expect(deadShown.status == 0 && deadShown.out.contains(garbage) && deadShown.out.contains("coord:{p\(d)}:requests"), "\(deadShown)")
            #expect(try cli.run(["dead", "show", "\(Self.partitions):0"], environment: env).status == 1)
            let deadPage = try Self.get(port, "/dead")
            #expect(deadPage.body.contains("href=\"/dead/\(d):0\"") && deadPage.body.contains("href=\"/dead/0\""), "\(deadPage.body)")
            let letterPage = try Self.get(port, "/dead/\(d):0")
            #expect(letterPage.status == 200 && letterPage.body.contains("id=\"dead-letter\"") && letterPage.body.contains(garbage),
                    "\(letterPage.body)")
            #expect(try Self.get(port, "/").body.contains("<strong id=\"dead-count\" class=\"bad\">2</strong>"))

            // Purge empties every list.
            let purged = try cli.run(["dead", "purge"], environment: env)
            #expect(purged.out == "purged 2 dead letters\n", "\(purged)")
            #expect(try client.pipelinePerMaster((0..<Self.partitions).map { RedisCommand("LLEN", "coord:{p\($0)}:dead") } + [RedisCommand("LLEN", "coord:dead")])
                .allSatisfy { $0.integer == 0 })
        }

        /// Polls `condition` every 50 ms until it holds, or throws after `timeout` seconds.
        static func wait(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while try !condition() {
                guard Date() < deadline else { throw HarnessError.timeout(what) }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }

        /// A GET of the console on loopback: status and body.
        static func get(_ port: Int, _ path: String) throws -> (status: Int, body: String) {
            try request("GET", port, path)
        }

        /// A request to the console on loopback (cookies only as `headers` give them): status and body.
        static func request(_ method: String, _ port: Int, _ path: String, headers: [String: String] = [:],
                            body: String? = nil) throws -> (status: Int, body: String) {
            var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")), timeoutInterval: 10)
            request.httpMethod = method
            request.httpShouldHandleCookies = false
            for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
            request.httpBody = body.map { Data($0.utf8) }
            let answer = Answer()
            URLSession.shared.dataTask(with: request) { data, response, error in
                answer.set((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data(), error)
            }.resume()
            return try answer.wait()
        }

        /// What a URLSession task answered, handed to the test's thread.
        final class Answer: @unchecked Sendable {
            private let done = DispatchSemaphore(value: 0)
            private var status = 0
            private var body = Data()
            private var error: (any Error)?

            func set(_ status: Int, _ body: Data, _ error: (any Error)?) {
                (self.status, self.body, self.error) = (status, body, error)
                done.signal()
            }

            func wait() throws -> (status: Int, body: String) {
                done.wait()
                if let error { throw error }
                return (status, String(decoding: body, as: UTF8.self))
            }
        }
    }
}
