import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Retention: nothing the daemon stores outlives what it belongs to", .sharesMachine)
    struct RetentionTests {
        /// Keys that are bounded by a cap or by the life of a live daemon, not by a TTL.
        static func boundedOtherwise(_ key: String, _ h: Harness) -> Bool {
            key == h.keys.eventStream || key == h.keys.dead || key == h.keys.workerIndex
                || key.hasPrefix("coord:inflight-lists:") || key.hasPrefix("coord:inflight:")
        }

        @Test("--retention 2s: a completed plan's keys are gone afterwards, get_plan answers not_found, and no key is left without a TTL")
        func retention() throws {
            let h = try Harness()
            try h.startDaemon { $0.retention = 2 }
            try h.push(Wire.coordinate("ret-1", customer: "cust-r", executeNow: true,
                                       [Wire.recommendation("r1", resources: ["i-1"]), Wire.recommendation("r2", action: "scale_down", resources: ["i-2"])]))
            let reply = try h.reply(on: "test:replies")
            let plans = ((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(plans.count == 2)
            for plan in plans { _ = try h.waitForPlan(plan, status: "completed") }
            // Once ended, every key either has a TTL or is bounded by a cap or a live daemon.
            try h.wait("the plans' recommendations to leave the active set") {
                try h.redis.send("EXISTS", h.keys.active(customer: "cust-r")).integer == 0
            }
            for key in try h.allKeys() where !Self.boundedOtherwise(key, h) {
                let ttl = try h.redis.send("PTTL", key).integer ?? -2
                #expect(ttl != -1, "\(key) has no TTL")
            }
            try h.wait("the completed plans to expire", timeout: 10) {
                try plans.allSatisfy { try h.redis.send("EXISTS", h.keys.plan($0)).integer == 0 }
            }
            // Left: only what lives by other rules (the idempotency record lives --dedupe-ttl).
            let left = try h.allKeys().filter { !Self.boundedOtherwise($0, h) && !$0.hasPrefix("coord:workers:") && !$0.contains(":dedupe:") }
            #expect(left.filter { $0.contains("cust-r") || plans.contains(where: $0.contains) } == [])
            try h.push(Wire.json(["kind": "get_plan", "plan_id": plans[0], "reply_to": "test:get"]))
            let get = try h.reply(on: "test:get")
            #expect((get["error"] as? [String: Any])?["code"] as? String == "not_found")
        }

        @Test("--plan-hold 2s: an unstarted plan is cancelled (not_started) and a conflicting recommendation sent afterwards is kept")
        func planHold() throws {
            let h = try Harness()
            try h.startDaemon { $0.planHold = 2 }
            try h.push(Wire.coordinate("hold-1", customer: "cust-h", [Wire.recommendation("first", resources: ["db-1"])]))
            let reply = try h.reply(on: "test:replies")
            let plan = try #require(((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            // While held, a conflicting one is discarded.
            try h.push(Wire.coordinate("hold-2", customer: "cust-h", [Wire.recommendation("second", action: "scale_down", resources: ["db-1"])]))
            #expect(try Harness.outcome(h.reply(on: "test:replies")).discarded["second"] == "conflicts_with_active")
            let cancelled = try h.waitForPlan(plan, status: "cancelled", timeout: 15)
            #expect(cancelled["cancel_reason"] as? String == "not_started")
            let event = try h.events(plan: plan).first { $0["type"] as? String == "plan.cancelled" }
            #expect((event?["data"] as? [String: Any])?["reason"] as? String == "not_started")
            try h.push(Wire.coordinate("hold-3", customer: "cust-h", [Wire.recommendation("third", action: "scale_down", resources: ["db-1"])]))
            #expect(try Harness.outcome(h.reply(on: "test:replies")).kept == ["third"])
            #expect(try h.redis.send("ZCARD", h.keys.heldPlans).integer == 1)
        }

        @Test("the dead-letter list stops at --dead-letter-max; reply lists keep their newest --reply-max")
        func caps() throws {
            let h = try Harness()
            try h.startDaemon {
                $0.deadLetterMax = 5
                $0.replyMax = 1000
            }
            try h.pushAll((0..<12).map { "{\"kind\":\"coordinate\",\"request_id\":\"bad-\($0)\",\"reply_to\":\"test:bad\",\"customer_id\":7}" })
            try h.wait("12 replies") { try h.length("test:bad") == 12 }
            try h.wait("the dead letters") { try h.length(h.keys.dead) == 5 }
            try h.settle()
            #expect(try h.length(h.keys.dead) == 5)
            let newest = try h.deadLetters().last?["raw"] as? String
            #expect(newest?.contains("bad-11") == true)
            try h.pushAll((0..<1100).map { Wire.json(["kind": "get_plan", "plan_id": "p-\($0)", "reply_to": "test:many"]) })
            try h.wait("every get_plan answered", timeout: 30) { try h.redis.send("LLEN", h.keys.requests).integer == 0 }
            try h.wait("the reply list at its cap", timeout: 30) { try h.length("test:many") == 1000 }
        }
    }
}
