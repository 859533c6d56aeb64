import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Plan execution over a real Redis", .sharesMachine)
    struct ExecutionTests {
        /// Coordinates the recommendations with execute_now and returns plan ids by recommendation id.
        func run(_ h: Harness, _ recs: [[String: Any]], id: String = "exec", customer: String = "cust-x") throws -> [String: String] {
            try h.push(Wire.coordinate(id, customer: customer, replyTo: "test:exec", executeNow: true, recs))
            let reply = try h.reply(on: "test:exec")
            let result = try #require(reply["result"] as? [String: Any], "\(reply)")
            var plans: [String: String] = [:]
            for plan in result["execution_plans"] as? [[String: Any]] ?? [] {
                let recommendation = try #require(plan["recommendation_id"] as? String, "\(plan)")
                plans[recommendation] = try #require(plan["id"] as? String, "\(plan)")
            }
            return plans
        }

        func summary(_ events: [[String: Any]]) -> [String] {
            events.map { event in
                let type = event["type"] as? String ?? "?"
                if let index = event["step_index"] as? Int { return "\(type):\(index)" }
                return type
            }
        }

        @Test("scenario 3: migrate_workload fails, take_snapshot is rolled back, events in order")
        func scenario3() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.push(fixture("scenario3-rollback"))
            let reply = try h.reply(on: "test:replies:scenario-3")
            let result = try #require(reply["result"] as? [String: Any])
            #expect(result["auto_approved"] as? Int == 1)
            let planID = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            let plan = try h.waitForPlan(planID, status: "rolled_back")
            let steps = try #require(plan["steps"] as? [[String: Any]])
            #expect(steps.map { $0["action"] as? String } == ["take_snapshot", "migrate_workload", "validate_quality"])
            #expect(steps.map { $0["status"] as? String } == ["rolled_back", "failed", "pending"])
            #expect(summary(try h.events(plan: planID)) == [
                "plan.created", "plan.started", "step.started:0", "step.completed:0", "step.started:1",
                "step.failed:1", "step.rolled_back:0", "plan.rolled_back",
            ])
            // the recommendation ended with its plan
            #expect(try h.hlen(h.keys.active(customer: "cust-3")) == 0)
        }

        @Test("a failed non-critical step is marked failed and the plan goes on to completed")
        func nonCriticalFailure() throws {
            let h = try Harness()
            try h.startDaemon()
            let plans = try run(h, [Wire.recommendation("spot", action: "migrate_to_spot", resources: ["i-1"],
                                                        parameters: ["simulate_failure": "validate_quality",
                                                                     "non_critical_steps": ["validate_quality"]])])
            let plan = try h.waitForPlan(try #require(plans["spot"]), status: "completed")
            let steps = try #require(plan["steps"] as? [[String: Any]])
            #expect(steps.map { $0["status"] as? String } == ["completed", "completed", "failed"])
            #expect(steps[2]["critical"] as? Bool == false)
            #expect(steps[2]["error"] as? String != nil)
            let types = summary(try h.events(plan: try #require(plans["spot"])))
            #expect(types == ["plan.created", "plan.started", "step.started:0", "step.completed:0", "step.started:1",
                              "step.completed:1", "step.started:2", "step.failed:2", "plan.completed"])
        }

        @Test("a rollback that fails is recorded on its step and the plan still ends rolled_back")
        func failingRollback() throws {
            let h = try Harness()
            try h.startDaemon()
            let plans = try run(h, [Wire.recommendation("spot", action: "migrate_to_spot", resources: ["i-1"],
                                                        parameters: ["simulate_failure": "validate_quality",
                                                                     "simulate_rollback_failure": "migrate_workload"])])
            let plan = try h.waitForPlan(try #require(plans["spot"]), status: "rolled_back")
            let steps = try #require(plan["steps"] as? [[String: Any]])
            #expect(steps[1]["rollback_error"] as? String != nil)
            #expect(steps[0]["status"] as? String == "rolled_back")
            let types = summary(try h.events(plan: try #require(plans["spot"])))
            #expect(types.suffix(2) == ["step.rolled_back:0", "plan.rolled_back"])
        }

        @Test("a dependent plan starts only after its dependency completed")
        func dependencyChain() throws {
            let h = try Harness()
            try h.startDaemon { $0.simSpeed = 0.02 }
            let plans = try run(h, [
                Wire.recommendation("base", action: "migrate_to_spot", resources: ["i-1"]),
                Wire.recommendation("after", action: "tune", resources: ["i-2"], dependencies: ["base"]),
            ])
            _ = try h.waitForPlan(try #require(plans["after"]), status: "completed")
            let events = try h.events()
            let baseDone = try #require(events.firstIndex { $0["type"] as? String == "plan.completed" && $0["plan_id"] as? String == plans["base"] })
            let afterStart = try #require(events.firstIndex { $0["type"] as? String == "plan.started" && $0["plan_id"] as? String == plans["after"] })
            #expect(baseDone < afterStart)
        }

        @Test("a dependent plan is cancelled when its dependency is rolled back")
        func dependencyFails() throws {
            let h = try Harness()
            try h.startDaemon()
            let plans = try run(h, [
                Wire.recommendation("base", action: "migrate_to_spot", resources: ["i-1"], parameters: ["simulate_failure": "migrate_workload"]),
                Wire.recommendation("after", action: "tune", resources: ["i-2"], dependencies: ["base"]),
                Wire.recommendation("after-after", action: "tune2", resources: ["i-3"], dependencies: ["after"]),
            ])
            _ = try h.waitForPlan(try #require(plans["base"]), status: "rolled_back")
            let afterID = try #require(plans["after"])
            let cancelled = try h.waitForPlan(afterID, status: "cancelled")
            // It never ran: no step of it started, and every step is still pending.
            #expect((cancelled["steps"] as? [[String: Any]])?.allSatisfy { $0["status"] as? String == "pending" } == true)
            #expect(cancelled["started_at"] == nil || cancelled["started_at"] is NSNull)
            #expect(try !h.events(plan: afterID).contains { ["plan.started", "step.started"].contains($0["type"] as? String ?? "") })
            _ = try h.waitForPlan(try #require(plans["after-after"]), status: "cancelled")
            let event = try #require(try h.events(plan: afterID).first { $0["type"] as? String == "plan.cancelled" })
            #expect(((event["data"] as? [String: Any])?["reason"] as? String)?.contains("base") == true)
        }

        @Test("hundreds of plans at once all reach a final state")
        func manyPlans() throws {
            let h = try Harness()
            try h.startDaemon()
            var commands: [RedisCommand] = []
            for n in 0..<300 {
                let fail = n % 10 == 0 ? ["simulate_failure": "migrate_workload"] : [:]
                commands.append(RedisCommand("LPUSH", "coord:requests", Wire.coordinate(
                    "many-\(n)", customer: "m-\(n)", replyTo: nil, executeNow: true,
                    [Wire.recommendation("r", action: "migrate_to_spot", resources: ["i"], parameters: fail)])))
            }
            _ = try h.redis.pipeline(commands)
            try h.wait("300 plans to end", timeout: 60) {
                try h.events().filter { ["plan.completed", "plan.rolled_back"].contains($0["type"] as? String ?? "") }.count == 300
            }
            let events = try h.events()
            #expect(events.filter { $0["type"] as? String == "plan.completed" }.count == 270)
            #expect(events.filter { $0["type"] as? String == "plan.rolled_back" }.count == 30)
            // Non-zero while a plan runs is shown by `takeover`; here nothing is left running.
            #expect(try h.zcard(h.keys.runningPlans) == 0)
        }

        @Test("agents executor with `coordinatord agent`: completion, failure with rollback, and a step timeout")
        func agentsExecutor() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 2 }
            _ = try h.launch(["agent", "--id", "cost-agent-1", "--fail", "migrate_workload"])
            _ = try h.launch(["agent", "--id", "application-agent", "--ignore", "tune"])
            _ = try h.launch(["agent", "--id", "perf-agent-1"])
            let plans = try run(h, [
                Wire.recommendation("ok", agent: "perf-agent-1", action: "resize", resources: ["i-1"]),
                Wire.recommendation("fails", agent: "cost-agent-1", action: "migrate_to_spot", resources: ["i-2"]),
                Wire.recommendation("silent", agent: "application-agent", action: "tune", resources: ["i-3"]),
            ])
            _ = try h.waitForPlan(try #require(plans["ok"]), status: "completed")
            let failed = try h.waitForPlan(try #require(plans["fails"]), status: "rolled_back")
            let steps = try #require(failed["steps"] as? [[String: Any]])
            #expect(steps.map { $0["status"] as? String } == ["rolled_back", "failed", "pending"])
            #expect((steps[1]["error"] as? String)?.contains("cost-agent-1") == true)
            let silent = try h.waitForPlan(try #require(plans["silent"]), status: "rolled_back", timeout: 15)
            #expect(((silent["steps"] as? [[String: Any]])?.first?["error"] as? String)?.contains("step-timeout") == true)
        }

        @Test("a daemon SIGKILLed mid-plan: another takes the plan over and rolls it back, once")
        func takeover() throws {
            let h = try Harness()
            let process = try h.launch(["run", "--sim-speed", "1", "--plan-lease", "2", "--heartbeat-ttl", "2"])
            let plans = try run(h, [Wire.recommendation("slow", action: "migrate_to_spot", resources: ["i-1"])])
            let planID = try #require(plans["slow"])
            // take_snapshot takes 0.5 s, migrate_workload 2 s: kill during migrate_workload.
            try h.wait("step 1 to start", timeout: 15) {
                try h.events(plan: planID).contains { $0["type"] as? String == "step.started" && $0["step_index"] as? Int == 1 }
            }
            #expect(try h.zcard(h.keys.runningPlans) == 1)
            ChildProcess.stop(process, signal: SIGKILL)
            #expect(try h.plan(planID)?["status"] as? String == "running")
            try h.startDaemon()
            try h.startDaemon()
            let plan = try h.waitForPlan(planID, status: "rolled_back", timeout: 30)
            let events = try h.events(plan: planID)
            let rolledBack = events.filter { $0["type"] as? String == "plan.rolled_back" }
            #expect(rolledBack.count == 1)
            #expect((rolledBack.first?["data"] as? [String: Any])?["reason"] as? String == "worker_lost")
            #expect((plan["steps"] as? [[String: Any]])?.first?["status"] as? String == "rolled_back")
            #expect(try h.redis.send("ZCARD", "coord:plans:running").integer == 0)
        }
    }
}
