import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("execute_plan answers with the plan as execution starts", .sharesMachine)
    struct ExecutePlanTests {
        @Test("the reply says running with started_at, written in the commit that starts it; plan.started once; the plan completes")
        func startsInTheCommit() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("ep-1", customer: "cust-e", [Wire.recommendation("e1", resources: ["vm-1"])]))
            let reply = try h.reply(on: "test:replies")
            let planID = try #require(((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            try h.push(Wire.json(["kind": "execute_plan", "plan_id": planID, "reply_to": "test:ep"]))
            let started = try h.reply(on: "test:ep")
            let plan = try #require(started["result"] as? [String: Any])
            #expect(plan["status"] as? String == "running")
            #expect(plan["started_at"] is String)
            _ = try h.waitForPlan(planID, status: "completed")
            let types = try h.events(plan: planID).compactMap { $0["type"] as? String }
            #expect(types.filter { $0 == "plan.started" }.count == 1, "\(types)")
            #expect(types.last == "plan.completed")
            #expect(try h.redis.send("ZCARD", h.keys.runningPlans).integer == 0)
        }

        @Test("a plan whose dependency has not ended answers pending and starts when it completes")
        func waitsForDependency() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(Wire.coordinate("ep-2", customer: "cust-f", [
                Wire.recommendation("base", resources: ["vm-1"]),
                Wire.recommendation("after", action: "enable_caching", resources: ["vm-2"], dependencies: ["base"]),
            ]))
            let reply = try h.reply(on: "test:replies")
            let plans = ((reply["result"] as? [String: Any])?["execution_plans"] as? [[String: Any]]) ?? []
            let planOf = Dictionary(uniqueKeysWithValues: plans.compactMap { p in (p["recommendation_id"] as? String).map { ($0, p["id"] as? String ?? "") } })
            let after = try #require(planOf["after"])
            let base = try #require(planOf["base"])
            try h.push(Wire.json(["kind": "execute_plan", "plan_id": after, "reply_to": "test:ep"]))
            #expect(((try h.reply(on: "test:ep"))["result"] as? [String: Any])?["status"] as? String == "pending")
            try h.push(Wire.json(["kind": "execute_plan", "plan_id": base, "reply_to": "test:ep"]))
            #expect(((try h.reply(on: "test:ep"))["result"] as? [String: Any])?["status"] as? String == "running")
            _ = try h.waitForPlan(base, status: "completed")
            _ = try h.waitForPlan(after, status: "completed")
        }
    }
}
