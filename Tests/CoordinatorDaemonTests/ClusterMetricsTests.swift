import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// `--metrics-port` on a real 3-master Redis Cluster: the same families as on one Redis, the
/// partitions' loops counting into the daemon's one set, the gauges read from Redis summed
/// over the partitions (one pipeline per master), and `coordinatord_up` following the cluster.
extension RealRedis {
    @Suite("Prometheus metrics on a Redis Cluster", .sharesMachine)
    struct ClusterMetricsTests {
        static let partitions = 8
        static let root = Keys(prefix: "coord")

        static func partition(_ customer: String) -> Int {
            Int(RedisClusterSlot.crc16(Array(customer.utf8))) % partitions
        }

        @Test("request counters, queue gauges and pending approvals sum over the partitions; up follows the cluster")
        func sumsOverPartitions() throws {
            let cluster = try RedisCluster.start(masters: 3)
            defer { cluster.stop() }
            let reservation = try PortReservation(forListener: true)
            var config = DaemonConfiguration()
            config.redisURL = cluster.url
            config.partitions = Self.partitions
            config.simSpeed = 0
            config.heartbeatTTL = 2
            config.planLease = 2
            config.metricsPort = reservation.port
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }
            let url = "http://127.0.0.1:\(reservation.port)/metrics"
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }

            var answer = try PrometheusScrape.scrape(url)
            let deadline = Date().addingTimeInterval(20)
            while answer.value("coordinatord_up") != 1, Date() < deadline {
                Thread.sleep(forTimeInterval: 0.1)
                answer = try PrometheusScrape.scrape(url)
            }
            #expect(answer.value("coordinatord_up") == 1, "up once the cluster is read")
            #expect(answer.value("coordinatord_queue_depth", ["queue": "requests"]) == 0)

            // Traffic: 30 low-risk requests executed at once, 6 medium-risk ones left pending,
            // each set over customers of several partitions.
            let customers = (0..<10).map { "metrics-cust-\($0)" }
            #expect(Set(customers.map(Self.partition)).count >= 4)
            for i in 0..<30 {
                let customer = customers[i % customers.count]
                _ = try client.send("LPUSH", "coord:requests", Wire.coordinate(
                    "ok-\(i)", customer: customer, replyTo: "replies:metrics", executeNow: true,
                    [Wire.recommendation("rec-\(i)", resources: ["r-\(i)"])]))
            }
            let pendingCustomers = (0..<6).map { "metrics-pending-\($0)" }
            #expect(Set(pendingCustomers.map(Self.partition)).count >= 3)
            for (i, customer) in pendingCustomers.enumerated() {
                _ = try client.send("LPUSH", "coord:requests", Wire.coordinate(
                    "wait-\(i)", customer: customer, replyTo: "replies:metrics",
                    [Wire.recommendation("wait-\(i)", risk: "medium", resources: ["db-\(i)"])]))
            }
            for _ in 0..<36 { #expect(try client.blockingPop(["replies:metrics"], timeout: 60) != nil) }
            // Step results for plans of several partitions: the simulated executor reads none, so
            // they wait in their partitions' queues (`coord:{p<k>}:steps:results`).
            for k in [0, 3, 5, 6, 6] {
                _ = try client.send("LPUSH", "coord:steps:results", Wire.json([
                    "plan_id": "\(k).\(UUID().uuidString.lowercased())", "step_id": "s", "ok": true, "attempt": "x", "rollback": false]))
            }
            // Bad messages: dead letters in the partitions their bytes pick.
            let bad = (0..<7).map { "not json \($0)" }
            for raw in bad { _ = try client.send("LPUSH", "coord:requests", raw) }

            let resultsWaiting = Date().addingTimeInterval(20)
            func partitionSum(_ name: (Keys) -> String) throws -> (total: Int, partitions: Int) {
                let replies = try client.pipelinePerMaster((0..<Self.partitions).map { RedisCommand("LLEN", name(Self.root.partition($0))) })
                let lengths = replies.map { Int($0.integer ?? 0) }
                return (lengths.reduce(0, +), lengths.count { $0 > 0 })
            }
            while try partitionSum({ $0.stepResults }).total < 5 || partitionSum({ $0.dead }).total < bad.count, Date() < resultsWaiting {
                Thread.sleep(forTimeInterval: 0.05)
            }
            let results = try partitionSum { $0.stepResults }
            let dead = try partitionSum { $0.dead }
            #expect(results.total == 5 && results.partitions == 4, "\(results)")
            #expect(dead.total == bad.count && dead.partitions >= 2, "\(dead)")

            // The scrape shows the sums (the sampler reads once a second).
            let settled = Date().addingTimeInterval(20)
            repeat {
                answer = try PrometheusScrape.scrape(url)
                if answer.value("coordinatord_queue_depth", ["queue": "dead"]) == Double(bad.count),
                   answer.value("coordinatord_approvals_pending", ["risk": "medium"]) == 6,
                   answer.value("coordinatord_plans_finished_total", ["status": "completed"]) == 30 { break }
                Thread.sleep(forTimeInterval: 0.2)
            } while Date() < settled
            #expect(answer.value("coordinatord_messages_total", ["queue": "requests", "kind": "coordinate", "outcome": "ok"]) == 36)
            #expect(answer.value("coordinatord_messages_total", ["queue": "requests", "kind": "unknown", "outcome": "dead"]) == Double(bad.count))
            #expect(answer.value("coordinatord_dead_letters_total", ["code": "invalid_json"]) == Double(bad.count))
            #expect(answer.value("coordinatord_request_duration_seconds_count", ["kind": "coordinate"]) == 36)
            #expect(answer.value("coordinatord_plans_finished_total", ["status": "completed"]) == 30)
            #expect(answer.value("coordinatord_queue_depth", ["queue": "steps:results"]) == 5)
            #expect(answer.value("coordinatord_queue_depth", ["queue": "dead"]) == Double(bad.count))
            #expect(answer.value("coordinatord_queue_depth", ["queue": "requests"]) == 0)
            #expect(answer.value("coordinatord_approvals_pending", ["risk": "medium"]) == 6)
            #expect(answer.value("coordinatord_approvals_pending", ["risk": "low"]) == 0)
            #expect(answer.value("coordinatord_approvals_expiring_soon") == 0)
            #expect(answer.value("coordinatord_plans", ["status": "running"]) == 0)
            #expect(answer.value("coordinatord_up") == 1)

            // A master dies (no replica to take over): the cluster cannot be read, up turns 0.
            let victim = try cluster.masterPort(forSlot: RedisClusterSlot.of(Self.root.partition(0).requests))
            cluster.server(port: victim)!.kill()
            let down = Date().addingTimeInterval(20)
            repeat {
                answer = try PrometheusScrape.scrape(url)
                if answer.value("coordinatord_up") == 0 { break }
                Thread.sleep(forTimeInterval: 0.2)
            } while Date() < down
            #expect(answer.status == 200)
            #expect(answer.value("coordinatord_up") == 0, "up while a master is dead")
            // It comes back: up is 1 again once the cluster answers.
            try cluster.server(port: victim)!.restart()
            let back = Date().addingTimeInterval(30)
            repeat {
                answer = try PrometheusScrape.scrape(url)
                if answer.value("coordinatord_up") == 1 { break }
                Thread.sleep(forTimeInterval: 0.2)
            } while Date() < back
            #expect(answer.value("coordinatord_up") == 1, "up once the master is back")
        }
    }
}
