import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// `RetentionTests` on a 3-master, 3-replica Redis Cluster (PROTOCOL.md sections 9 and 11):
/// each partition's housekeeping (approval expiry, plan hold) and the TTLs its commits set
/// bound its state as on one Redis; the keys carry `{p<k>}`. The tests share one cluster,
/// each under a prefix of its own.
extension RealRedis {
    @Suite("Retention on a Redis Cluster", .sharesMachine)
    struct ClusterRetentionTests {
        static let shared = SharedCluster()

        /// Keys bounded by a cap or by the life of a live daemon, not by a TTL: the single-Redis
        /// ones in each partition, and the cluster's registry and ingress index.
        static func boundedOtherwise(_ key: String, _ h: ClusterHarness) -> Bool {
            if key == h.root.clusterDaemons || key.hasPrefix("\(h.prefix):ingress:{") || key.hasPrefix("\(h.prefix):inflight:{") {
                return true
            }
            return h.allPartitions.contains { keys in
                key == keys.eventStream || key == keys.dead || key == keys.workerIndex
                    || key.hasPrefix("\(keys.prefix):inflight-lists:") || key.hasPrefix("\(keys.prefix):inflight:")
            }
        }

        /// Two customers in different partitions.
        static func customers(_ h: ClusterHarness) -> (String, String) {
            let first = "cust-r"
            let second = (0..<100).map { "cust-s\($0)" }.first { h.partitions.of(customer: $0) != h.partitions.of(customer: first) }!
            return (first, second)
        }

        @Test("--retention 2s: completed plans, a rejected and an expired approval are gone afterwards, read by id answers not_found, no key is left without a TTL, the indexes let a conflicting recommendation in")
        func retention() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "ret")
                defer { h.stop() }
                try h.startDaemon {
                    $0.retention = 2
                    $0.policy.expiry[.high] = 2
                }
                let (planned, approving) = Self.customers(h)
                let replies = h.list("replies")
                try h.push(Wire.coordinate("ret-1", customer: planned, replyTo: replies, executeNow: true,
                                           [Wire.recommendation("r1", resources: ["i-1"]),
                                            Wire.recommendation("r2", action: "scale_down", resources: ["i-2"])]))
                let reply = try h.reply(on: replies)
                let plans = ((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                #expect(plans.count == 2, "\(reply)")
                for plan in plans {
                    #expect(plan.hasPrefix("\(h.partitions.of(customer: planned))."))
                    _ = try h.waitForPlan(plan, status: "completed")
                }

                // A medium approval rejected by a person, a high one left to expire (2 s).
                try h.push(Wire.coordinate("ret-2", customer: approving, replyTo: replies,
                                           [Wire.recommendation("m1", risk: "medium", resources: ["db-1"]),
                                            Wire.recommendation("h1", action: "migrate_database", risk: "high", resources: ["db-2"])]))
                let waiting = try #require(try h.reply(on: replies)["result"] as? [String: Any])
                let approvals = try #require(waiting["approvals"] as? [[String: Any]])
                let medium = try #require(approvals.first { $0["risk_level"] as? String == "medium" }?["id"] as? String)
                let high = try #require(approvals.first { $0["risk_level"] as? String == "high" }?["id"] as? String)
                let part = h.keys(customer: approving)
                #expect(try h.client.send("ZCARD", part.pendingApprovals).integer == 2)
                try h.push(Wire.json(["approval_id": medium, "decision": "reject", "user_id": "ops@example.com", "reason": "no",
                                      "reply_to": replies]), to: "approvals")
                #expect((try h.reply(on: replies)["result"] as? [String: Any])?["status"] as? String == "rejected")
                try h.wait("the high approval to expire") {
                    guard let bytes = try h.client.send("GET", part.approval(high)).bytes else { return true }
                    return try Harness.object(bytes)["status"] as? String == "expired"
                }

                // Once ended, every key either has a TTL or is bounded by a cap or a live daemon.
                try h.wait("the recommendations to leave the active sets") {
                    try h.client.send("EXISTS", h.keys(customer: planned).active(customer: planned)).integer == 0
                        && h.client.send("EXISTS", part.active(customer: approving)).integer == 0
                }
                #expect(try h.client.send("ZCARD", part.pendingApprovals).integer == 0, "the pending index is empty")
                try h.settle()
                for key in try h.allKeys() where !Self.boundedOtherwise(key, h) {
                    #expect(key.hasPrefix("\(h.prefix):{p"), "\(key) is in no partition")
                    let ttl = try h.client.send("PTTL", key).integer ?? -2
                    #expect(ttl != -1, "\(key) has no TTL")
                }
                let ids = plans + [medium, high]
                try h.wait("the plans and approvals to expire", timeout: 10) {
                    try plans.allSatisfy { try h.client.send("EXISTS", try h.keys(id: $0).plan($0)).integer == 0 }
                        && [medium, high].allSatisfy { try h.client.send("EXISTS", part.approval($0)).integer == 0 }
                }
                // Left: only what lives by other rules (the idempotency record lives --dedupe-ttl).
                let left = try h.allKeys().filter {
                    !Self.boundedOtherwise($0, h) && !$0.contains(":workers:") && !$0.contains(":dedupe:") && !$0.hasSuffix(":owner")
                }
                #expect(left.filter { key in key.contains(planned) || key.contains(approving) || ids.contains(where: key.contains) } == [])

                // Reads route by id and find nothing.
                let reads = h.list("reads")
                try h.push(Wire.json(["kind": "get_plan", "plan_id": plans[0], "reply_to": reads]))
                #expect(Harness.code(try h.reply(on: reads)) == "not_found")
                try h.push(Wire.json(["kind": "get_approval", "approval_id": medium, "reply_to": reads]))
                #expect(Harness.code(try h.reply(on: reads)) == "not_found")
                // The customers' indexes hold nothing stale: recommendations on the same resources are kept.
                try h.push(Wire.coordinate("ret-3", customer: approving, replyTo: replies,
                                           [Wire.recommendation("again", action: "scale_down", resources: ["db-1", "db-2"])]))
                #expect(try Harness.outcome(h.reply(on: replies)).kept == ["again"])
                try h.push(Wire.coordinate("ret-4", customer: planned, replyTo: replies,
                                           [Wire.recommendation("again", action: "scale_down", resources: ["i-1", "i-2"])]))
                #expect(try Harness.outcome(h.reply(on: replies)).kept == ["again"])
            }
        }

        @Test("--plan-hold 2s: an unstarted plan is cancelled (not_started) in its partition and a conflicting recommendation sent afterwards is kept")
        func planHold() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "hold")
                defer { h.stop() }
                try h.startDaemon { $0.planHold = 2 }
                let customer = "cust-h"
                let replies = h.list("replies")
                try h.push(Wire.coordinate("hold-1", customer: customer, replyTo: replies, [Wire.recommendation("first", resources: ["db-1"])]))
                let reply = try h.reply(on: replies)
                let plan = try #require(((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
                let part = h.keys(customer: customer)
                #expect(try h.client.send("ZSCORE", part.heldPlans, plan).string != nil, "held in \(part.heldPlans)")
                // While held, a conflicting one is discarded.
                try h.push(Wire.coordinate("hold-2", customer: customer, replyTo: replies,
                                           [Wire.recommendation("second", action: "scale_down", resources: ["db-1"])]))
                #expect(try Harness.outcome(h.reply(on: replies)).discarded["second"] == "conflicts_with_active")
                let cancelled = try h.waitForPlan(plan, status: "cancelled", timeout: 15)
                #expect(cancelled["cancel_reason"] as? String == "not_started")
                let event = try h.events().first { $0["plan_id"] as? String == plan && $0["type"] as? String == "plan.cancelled" }
                #expect((event?["data"] as? [String: Any])?["reason"] as? String == "not_started")
                try h.push(Wire.coordinate("hold-3", customer: customer, replyTo: replies,
                                           [Wire.recommendation("third", action: "scale_down", resources: ["db-1"])]))
                #expect(try Harness.outcome(h.reply(on: replies)).kept == ["third"])
                #expect(try h.client.send("ZCARD", part.heldPlans).integer == 1)
                #expect(try h.client.send("ZSCORE", part.heldPlans, plan).isNull, "the cancelled plan left the index")
            }
        }

        @Test("a partition's dead-letter list stops at --dead-letter-max; a reply list fed by every partition's outbox keeps its newest --reply-max")
        func caps() throws {
            try Self.shared.use { cluster in
                let h = ClusterHarness(cluster, name: "caps")
                defer { h.stop() }
                let daemon = try h.startDaemon {
                    $0.deadLetterMax = 5
                    $0.replyMax = 1000
                }
                // One customer: every bad request is refused in its partition.
                let bad = h.list("bad")
                let messages = (0..<12).map {
                    "{\"kind\":\"coordinate\",\"request_id\":\"bad-\($0)\",\"reply_to\":\"\(bad)\",\"customer_id\":\"cust-cap\",\"recommendations\":7}"
                }
                // In two rounds: the five newest are the second's (a round's letters may be in any order).
                _ = try h.client.send(RedisCommand("LPUSH", arguments: [h.root.requests] + messages.prefix(7)))
                try h.wait("7 replies") { try h.length(bad) == 7 }
                _ = try h.client.send(RedisCommand("LPUSH", arguments: [h.root.requests] + messages.suffix(5)))
                try h.wait("12 replies") { try h.length(bad) == 12 }
                let dead = h.keys(customer: "cust-cap").dead
                try h.wait("the dead letters") { try h.length(dead) == 5 }
                try h.settle()
                #expect(try h.length(dead) == 5)
                let kept = try Harness.objects(h.client.send("LRANGE", dead, 0, -1)).compactMap { $0["raw"] as? String }
                    .compactMap { $0.firstMatch(of: /bad-[0-9]+/).map { String($0.output) } }
                #expect(Set(kept) == Set((7..<12).map { "bad-\($0)" }), "\(kept)")

                // get_plans of ids that name no partition: spread by their bytes over the partitions.
                let many = h.list("many")
                let reads = (0..<1100).map { Wire.json(["kind": "get_plan", "plan_id": "p-\($0)", "reply_to": many]) }
                for chunk in stride(from: 0, to: reads.count, by: 100) {
                    _ = try h.client.send(RedisCommand("LPUSH", arguments: [h.root.requests] + reads[chunk..<min(chunk + 100, reads.count)]))
                }
                try h.settle(timeout: 60)
                #expect(try h.length(many) == 1000)
                // The reads were answered by several partitions, each through its own outbox.
                var processed: [Int] = []
                try h.wait("the partitions' heartbeats to count the reads") {
                    processed = try h.client.pipelinePerMaster((0..<ClusterHarness.partitionCount).map {
                        RedisCommand("HGET", h.root.partition($0).worker("\(daemon.workerID)-p\($0)"), "processed")
                    }).compactMap { $0.string.flatMap { Int($0) } }
                    return processed.reduce(0, +) >= 1100
                }
                #expect(processed.filter { $0 > 0 }.count >= 4, "partitions that answered: \(processed)")
            }
        }
    }
}
