import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Each message's commit stands alone", .sharesMachine)
    struct CommitIsolationTests {
        @Test("a reply_to of another type: the request's effects commit, reply_undeliverable is dead-lettered, the batch goes on")
        func undeliverableReply() throws {
            let h = try Harness()
            _ = try h.redis.send("SET", "test:a-string", "not a list")
            // Both in one batch: queued before the daemon starts.
            try h.push(Wire.coordinate("u-1", customer: "cust-u", replyTo: "test:a-string", [Wire.recommendation("u1", resources: ["x"])]))
            try h.push(Wire.coordinate("u-2", customer: "cust-v", replyTo: "test:ok", [Wire.recommendation("u2", resources: ["x"])]))
            try h.startDaemon { $0.workers = 1 }
            let ok = try h.reply(on: "test:ok")
            #expect(try Harness.outcome(ok).kept == ["u2"])
            try h.wait("the undeliverable reply's dead letter") { try h.deadLetters().count == 1 }
            let letter = try #require(try h.deadLetters().first)
            #expect((letter["error"] as? [String: Any])?["code"] as? String == "reply_undeliverable")
            #expect((letter["raw"] as? String)?.contains("u-1") == true)
            // Its effects committed all the same, once.
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-u"), "u1").integer == 1)
            #expect(try h.redis.send("GET", "test:a-string").string == "not a list")
            try h.settle()
            #expect(try h.deadLetters().count == 1)
            #expect(try h.redis.send("LLEN", h.keys.requests).integer == 0)
        }

        @Test("a write that fails in Redis fails its own message only")
        func failedWrite() throws {
            let h = try Harness()
            // A hostile writer made the customer's active hash a string.
            _ = try h.redis.send("SET", h.keys.active(customer: "cust-broken"), "oops")
            try h.push(Wire.coordinate("f-1", customer: "cust-broken", replyTo: "test:f1", [Wire.recommendation("f1", resources: ["y"])]))
            try h.push(Wire.coordinate("f-2", customer: "cust-fine", replyTo: "test:f2", [Wire.recommendation("f2", resources: ["y"])]))
            // And one whose approval index is a string: a write of its commit fails.
            _ = try h.redis.send("SET", h.keys.pendingApprovals(customer: "cust-broken2"), "oops")
            try h.push(Wire.coordinate("f-3", customer: "cust-broken2", replyTo: "test:f3", autoApprove: false,
                                       [Wire.recommendation("f3", resources: ["y"])]))
            try h.startDaemon { $0.workers = 1 }
            #expect(try Harness.outcome(h.reply(on: "test:f2")).kept == ["f2"])
            let failedWrite = try h.reply(on: "test:f3")
            #expect((failedWrite["error"] as? [String: Any])?["code"] as? String == "internal")
            let failed = try h.reply(on: "test:f1")
            #expect((failed["error"] as? [String: Any])?["code"] as? String == "internal")
            try h.wait("their dead letters") { try h.deadLetters().count == 2 }
            try h.settle()
            #expect(try h.deadLetters().count == 2)
            #expect(try h.length("test:f1") == 0)
            #expect(try h.length("test:f3") == 0)
            #expect(try h.redis.send("LLEN", h.keys.requests).integer == 0)
            // All or nothing: f-3's commit failed at its last write (the per-customer approval
            // index), and none of the writes before it (the active record, the index sets and
            // version keys, the approval, the global approval index) happened.
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "cust-fine"), "f2").integer == 1)
            let left = (try h.redis.send("KEYS", "coord:{cust-broken2}:*").array ?? []).compactMap(\.string)
            #expect(left == [h.keys.pendingApprovals(customer: "cust-broken2")], "\(left)")
            #expect(try h.redis.send("ZCARD", h.keys.pendingApprovals).integer == 0)
            #expect(try h.redis.send("KEYS", "coord:approval:*").array?.count == 0)
            #expect(!(try h.events().contains { $0["customer_id"] as? String == "cust-broken2" }))
        }

        @Test("admitted means processed: 10,000 recommendations, all kept, answered")
        func tenThousand() throws {
            let h = try Harness()
            try h.startDaemon { $0.maxRecommendations = 10_000; $0.maxMessageBytes = 64 << 20 }
            let recs = (0..<10_000).map { Wire.recommendation("big-\($0)", resources: ["vm-\($0)"]) }
            let started = Date()
            try h.push(Wire.coordinate("big", customer: "cust-big", replyTo: "test:big", recs))
            let reply = try h.reply(on: "test:big", timeout: 120)
            let elapsed = Date().timeIntervalSince(started)
            print("10,000-recommendation coordinate answered in \(String(format: "%.2f", elapsed)) s")
            #expect(reply["ok"] as? Bool == true)
            #expect(try Harness.outcome(reply).kept.count == 10_000)
            #expect(try h.redis.send("HLEN", h.keys.active(customer: "cust-big")).integer == 10_000)
        }

        @Test("a message handed back --max-deliveries times goes to coord:dead as poison, with attempts")
        func poison() throws {
            let h = try Harness()
            let message = Wire.coordinate("poison-1", customer: "cust-p", replyTo: "test:p", [Wire.recommendation("p1")])
            // A lapsed worker (no heartbeat) left it in flight, after four earlier failed deliveries.
            let inflight = "coord:inflight:ghost:requests:0"
            _ = try h.redis.send("SADD", h.keys.workerIndex, "ghost")
            _ = try h.redis.send("HSET", h.keys.inflightLists(worker: "ghost"), inflight, h.keys.requests)
            _ = try h.redis.send("LPUSH", inflight, message)
            _ = try h.redis.send("SET", h.keys.deliveries(queue: h.keys.requests, message: Array(message.utf8)), 4)
            try h.startDaemon { $0.maxDeliveries = 5; $0.heartbeatTTL = 1 }
            try h.wait("the poison dead letter") { try h.deadLetters().count == 1 }
            let letter = try #require(try h.deadLetters().first)
            #expect((letter["error"] as? [String: Any])?["code"] as? String == "poison")
            #expect(letter["attempts"] as? Int == 5)
            #expect(try h.length(inflight) == 0)
            // Nothing queued or in flight after a marker: no copy of it is left to be delivered.
            try h.settle()
            #expect(try h.length("test:p") == 0, "a poison message is not delivered again")
            #expect(try h.deadLetters().count == 1)
        }

        @Test("idempotency is per customer and per reply_to; reads never use it")
        func scopedIdempotency() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("same", customer: "cust-a", replyTo: "test:a", [Wire.recommendation("a1")]))
            let first = try h.reply(on: "test:a")
            #expect(try Harness.outcome(first).kept == ["a1"])
            // Another customer, same request_id: its own request.
            try h.push(Wire.coordinate("same", customer: "cust-b", replyTo: "test:b", [Wire.recommendation("b1")]))
            #expect(try Harness.outcome(h.reply(on: "test:b")).kept == ["b1"])
            // Same customer and id, another reply_to: refused, nothing leaks.
            try h.push(Wire.coordinate("same", customer: "cust-a", replyTo: "test:other", [Wire.recommendation("a1")]))
            let refused = try h.reply(on: "test:other")
            #expect((refused["error"] as? [String: Any])?["code"] as? String == "conflict_state")
            // A read with that request_id gets its own answer.
            try h.push(Wire.json(["kind": "list_approvals", "customer_id": "cust-c", "request_id": "same", "reply_to": "test:list"]))
            let list = try h.reply(on: "test:list")
            #expect((list["result"] as? [String: Any])?["count"] as? Int == 0)
            // The same reply_to gets the first reply again.
            try h.push(Wire.coordinate("same", customer: "cust-a", replyTo: "test:a", [Wire.recommendation("a1")]))
            let again = try h.reply(on: "test:a")
            #expect(try Harness.outcome(again).kept == ["a1"])
            #expect((again["result"] as? [String: Any])?["id"] as? String == (first["result"] as? [String: Any])?["id"] as? String)
        }

        @Test("housekeeping tasks are isolated: a broken approvals index does not stop recovery")
        func isolatedHousekeeping() throws {
            let h = try Harness()
            _ = try h.redis.send("SET", h.keys.pendingApprovals, "broken")
            let inflight = "coord:inflight:ghost:requests:0"
            _ = try h.redis.send("SADD", h.keys.workerIndex, "ghost")
            _ = try h.redis.send("HSET", h.keys.inflightLists(worker: "ghost"), inflight, h.keys.requests)
            _ = try h.redis.send("LPUSH", inflight, Wire.coordinate("lost-1", customer: "cust-l", replyTo: "test:l", [Wire.recommendation("l1")]))
            try h.startDaemon { $0.heartbeatTTL = 1 }
            let reply = try h.reply(on: "test:l")
            #expect(reply["request_id"] as? String == "lost-1")
            // Forgotten in the step after the hand-back, which the reply can overtake.
            try h.wait("the lapsed worker's index forgotten") {
                try h.redis.send("EXISTS", h.keys.inflightLists(worker: "ghost")).integer == 0
            }
            #expect(try h.redis.send("SISMEMBER", h.keys.workerIndex, "ghost").integer == 0)
        }
    }
}

