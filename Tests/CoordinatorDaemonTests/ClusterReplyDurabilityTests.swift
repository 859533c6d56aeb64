import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// `--min-replicas-acked` on the way out of a partition (PROTOCOL.md section 11): a reply is
/// pushed to its `reply_to` list, in a slot of its own, on a master of its own; the outbox
/// entry leaves only once that push reached a replica, or a failover of that master would lose
/// the reply and the entry with it.
extension RealRedis {
    @Suite("Replies kept until their push is replicated", .sharesMachine)
    struct ClusterReplyDurabilityTests {
        @Test("with the reply list's replica stopped, the reply is pushed but its outbox entry stays; resumed, it leaves, and the reply is there once")
        func outboxEntryWaitsForTheReplyListsReplica() throws {
            // A node timeout of 20 s: the stopped replica is not marked failed (then no longer
            // waited for) while the test looks.
            let cluster = try RedisCluster.start(masters: 3, replicasPerMaster: 1, nodeTimeout: 20_000, arguments: ["--hz", "100"])
            defer { cluster.stop() }
            var config = DaemonConfiguration()
            config.redisURL = cluster.url
            config.partitions = 8
            config.minReplicasAcked = 1
            config.heartbeatTTL = 5
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }

            let root = Keys(prefix: "coord")
            let customer = "durable"
            let k = Partitions(count: 8).of(customer: customer)
            let part = root.partition(k)
            let partitionMaster = try cluster.masterPort(forSlot: RedisClusterSlot.of(part.partitionLease))
            // A reply list on another master than the partition's.
            let replyTo = try #require((0..<100).map { "replies:durable-\($0)" }.first {
                try cluster.masterPort(forSlot: RedisClusterSlot.of($0)) != partitionMaster
            })
            let replyMaster = try cluster.masterPort(forSlot: RedisClusterSlot.of(replyTo))
            let replicaPort = try #require(cluster.replicaPorts(of: replyMaster).first, "the reply list's master has a replica")

            // The partition's loops run (their heartbeat) under the worker holding its lease.
            var owner: String?
            let held = Date().addingTimeInterval(30)
            while Date() < held {
                owner = try client.send("GET", part.partitionLease).string
                if let owner, try client.send("EXISTS", part.worker("\(owner)-p\(k)")).integer == 1 { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            let worker = try #require(owner, "partition \(k) is held")
            let sending = part.outboxSending(worker: "\(worker)-p\(k)")

            let replica = try cluster.direct(replicaPort)
            let info = try replica.send("INFO", "server").string ?? ""
            replica.close()
            let pidLine = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
            let pid = try #require(pidLine.flatMap { Int32($0.dropFirst("process_id:".count)) })
            kill(pid, SIGSTOP)
            var resumed = false
            defer { if !resumed { kill(pid, SIGCONT) } }

            // Straight onto the partition's queue: ingress would wait for coord:requests' replica.
            _ = try client.send("LPUSH", part.requests, Wire.coordinate(
                "durable-0", customer: customer, replyTo: replyTo, [Wire.recommendation("rec-durable")]))
            let pushed = Date().addingTimeInterval(30)
            while try client.send("LLEN", replyTo).integer == 0, Date() < pushed { Thread.sleep(forTimeInterval: 0.01) }
            #expect(try client.send("LLEN", replyTo).integer == 1, "the reply was pushed to \(replyTo)")
            #expect(try client.send("LLEN", sending).integer == 1,
                    "the outbox entry stays in \(sending) while the reply list's replica has not the push: \(cluster.whereIs(["durable-0"]))")

            kill(pid, SIGCONT)
            resumed = true
            let left = Date().addingTimeInterval(30)
            while try client.send("LLEN", sending).integer != 0, Date() < left { Thread.sleep(forTimeInterval: 0.02) }
            #expect(try client.send("LLEN", sending).integer == 0, "the entry left once the replica had the push")
            // Waited for on the same connection, not pushed again.
            let replies = (try client.send("LRANGE", replyTo, 0, -1).array ?? []).compactMap(\.bytes)
            #expect(replies.count == 1, "\(replies.count) replies")
            #expect(try Harness.object(try #require(replies.first))["request_id"] as? String == "durable-0")
        }
    }
}
