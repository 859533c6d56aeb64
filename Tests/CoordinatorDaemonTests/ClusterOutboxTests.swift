import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// A partition's outbox under a backlog (PROTOCOL.md section 11): the mover takes the first
/// entry with a blocking move and the rest in batches (`ClusterScripts.takeMore`).
extension RealRedis {
    @Suite("Outbox on a Redis Cluster", .sharesMachine)
    struct ClusterOutboxTests {
        static let shared = SharedCluster()

        @Test("a backlog of 300 entries leaves a partition's outbox in batches: every reply once, and no round of the mover fails")
        func backlogInBatches() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "outbox")
                defer { h.stop() }
                let log = LogRecorder()
                try h.startDaemon(logger: log.logger(level: .warning))
                let part = h.keys(customer: "cust-outbox")
                let list = "\(h.prefix):replies:backlog"
                // One push: the mover's blocking move takes the oldest, its batches the rest.
                let entries: [any RedisArgument] = (0..<300).map { Array("\(list)\n{\"n\":\($0)}".utf8) }
                _ = try h.client.send(RedisCommand("LPUSH", arguments: [part.outbox] + entries))
                try h.wait("the 300 replies") { try h.client.send("LLEN", list).integer == 300 }
                let replies = (try h.client.send("LRANGE", list, 0, -1).array ?? []).compactMap(\.bytes)
                #expect(Set(replies).count == 300, "\(replies.count) replies, \(Set(replies).count) distinct")
                // A failed round is retried (entries wait): the backlog still drains, one entry a
                // round, so only the log tells (takeMore called with one argument of its three).
                let failed = log.lines.filter { $0.message.contains("outbox") }
                #expect(failed.isEmpty, "\(failed.prefix(3).map { "\($0.message) \($0.metadata)" })")
            }
        }
    }
}
