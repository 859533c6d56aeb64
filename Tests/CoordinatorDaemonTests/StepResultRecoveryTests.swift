import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Recovery is not only for requests and decisions: agents' step results held in flight by a
    /// dead daemon (PROTOCOL.md sections 1 and 5) are taken over too, and each is applied once.
    @Suite("A dead daemon's step results in flight", .sharesMachine)
    struct StepResultRecoveryTests {
        static let plans = 400
        static let agents = 4

        /// Three daemons, the built binary for the two that are frozen: the owner runs every plan;
        /// the holder runs none and only takes results off `coord:steps:results` (a result for a
        /// plan it does not run goes to that plan's mailbox, acknowledged in the same commit); the
        /// rescuer starts after the holder is killed. The owner is frozen while the results are
        /// pushed, so the holder is the only daemon that can take them, and the rescuer the only
        /// one that can recover them: neither happens by another daemon's luck.
        @Test("A daemon SIGKILLed holding 400 agents' step results in flight: another daemon recovers them, each step and plan completes once")
        func killedMidResults() throws {
            let h = try Harness()
            let total = Self.plans
            // A heartbeat and lease that outlive its freeze: nobody takes its plans over.
            let owner = try h.launch(["run", "--executor", "agents", "--sim-speed", "0", "--step-timeout", "120",
                                      "--heartbeat-ttl", "30", "--plan-lease", "30", "--max-concurrent-plans", "\(total)"])
            let planOf = try startPlans(h, total)
            let agentLists = (0..<Self.agents).map { "coord:agent:fleet-\($0):steps" }
            try h.wait("\(total) steps dispatched", timeout: 60) {
                try agentLists.reduce(0) { $0 + (try h.length($1)) } == total
            }
            // Every plan is the owner's, none left for the holder to start.
            #expect(try h.length(h.keys.readyPlans) == 0)

            let holder = try h.launch(["run", "--executor", "agents", "--sim-speed", "0", "--step-timeout", "120",
                                       "--heartbeat-ttl", "2"])
            let holderID = try Freeze.workerID(of: holder, h)
            let held = try resultsList(of: holderID, h)

            // The agent takes every step and answers it; each result names its step's number.
            var results: [RedisCommand] = []
            var stepOf: [String: Int] = [:]
            for list in agentLists {
                let steps = try #require(try h.redis.send("RPOP", list, total).array, "\(list) emptied")
                for raw in steps {
                    let step = try Harness.object(try #require(raw.bytes))
                    let planID = try #require(step["plan_id"] as? String)
                    let n = try #require(planOf[planID], "a step of an unknown plan: \(step)")
                    stepOf[planID] = n
                    results.append(RedisCommand("LPUSH", h.keys.stepResults, Wire.json([
                        "plan_id": planID, "step_id": step["step_id"]!, "attempt": step["attempt"]!, "rollback": false,
                        "ok": true, "result": ["n": n, "pad": String(repeating: "r", count: 4096)], "rollback_data": [:]])))
                }
            }
            #expect(stepOf.count == total, "one step per plan taken")
            try Freeze.stop(owner, h)
            // Thawed below; here too when the test fails first, so that it stops on SIGTERM.
            defer { Freeze.thaw(owner) }
            _ = try h.redis.pipeline(results)

            // Frozen the moment it has taken a batch into its in-flight list (the batch is then
            // being read, a few hundred results of 4 KiB), before it mails them on; else thawed
            // and caught on its next batch.
            let deadline = Date().addingTimeInterval(20)
            var holding = 0
            while holding == 0 {
                guard Date() < deadline else { throw HarnessError.timeout("the holder never held step results in flight") }
                guard try h.length(held) > 0 else {
                    Thread.sleep(forTimeInterval: 0.0005)
                    continue
                }
                try Freeze.stop(holder, h)
                holding = try h.length(held)
                if holding == 0 { Freeze.thaw(holder) }
            }
            let inFlight = try Harness.objects(h.redis.send("LRANGE", held, 0, -1))
            #expect(inFlight.allSatisfy { planOf[$0["plan_id"] as? String ?? ""] != nil }, "only the agent's results in flight")
            ChildProcess.stop(holder, signal: SIGKILL)

            // The rescuer is the only live daemon: it hands the dead holder's results back (once
            // its heartbeat lapses) and mails each to its plan.
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 120 }
            try h.wait("the dead holder's in-flight results handed back", timeout: 20) {
                try h.length(held) == 0 && h.redis.send("EXISTS", h.keys.inflightLists(worker: holderID)).integer == 0
            }
            try h.wait("every result mailed to its plan", timeout: 20) {
                try h.length(h.keys.stepResults) == 0 && h.stepResultsInFlight() == 0
            }
            // Each result exactly once in its plan's mailbox: none lost, none copied.
            let ids = planOf.keys.sorted()
            let mail = try h.redis.pipeline(ids.map { RedisCommand("LRANGE", h.keys.planResults($0), 0, -1) })
            for (id, reply) in zip(ids, mail) {
                let letters = try Harness.objects(reply)
                #expect(letters.count == 1, "plan \(id) has \(letters.count) results in its mailbox")
                #expect((letters.first?["result"] as? [String: Any])?["n"] as? Int == planOf[id])
            }

            // The owner, thawed, applies each.
            Freeze.thaw(owner)
            try h.wait("every plan completed", timeout: 60) {
                try h.events().count { $0["type"] as? String == "plan.completed" } >= total
            }
            // Nothing left that could write: no result queued, in flight or in a mailbox, no
            // request or decision either.
            try h.stepResultsHandled(plans: ids)
            try h.settle()

            let events = try h.events()
            for type in ["step.started", "step.completed", "plan.completed"] {
                let plans = events.filter { $0["type"] as? String == type }.compactMap { $0["plan_id"] as? String }
                #expect(plans.count == total, "\(plans.count) \(type) events for \(total) plans")
                #expect(Set(plans) == Set(ids), "one \(type) for each plan")
            }
            #expect(!events.contains { ["step.failed", "plan.rolled_back", "plan.failed"].contains($0["type"] as? String ?? "") })
            for id in ids {
                let plan = try #require(try h.plan(id))
                let step = try #require((plan["steps"] as? [[String: Any]])?.first)
                #expect(plan["status"] as? String == "completed" && step["status"] as? String == "completed", "\(id)")
                #expect((step["result"] as? [String: Any])?["n"] as? Int == planOf[id], "plan \(id) kept its own result")
            }
            #expect(try h.deadLetters().isEmpty, "nothing innocent dead-lettered")
            #expect(try h.inflightCount() == 0)
            #expect(holding > 0, "the killed daemon held \(holding) results in flight")
        }

        /// `count` single-step plans started at once (execute_now), ten to a request, each
        /// for one of the agents; the plan ids, each with its number.
        func startPlans(_ h: Harness, _ count: Int) throws -> [String: Int] {
            var requests: [RedisCommand] = []
            for r in 0..<(count / 10) {
                let recommendations = (r * 10..<r * 10 + 10).map { n in
                    Wire.recommendation("sr-\(n)", agent: "fleet-\(n % Self.agents)", action: "resize", resources: ["vm-\(n)"])
                }
                requests.append(RedisCommand("LPUSH", h.keys.requests, Wire.coordinate(
                    "sr-req-\(r)", customer: "cust-sr-\(r)", replyTo: "test:sr", executeNow: true, recommendations)))
            }
            _ = try h.redis.pipeline(requests)
            var plans: [String: Int] = [:]
            for reply in try h.collectReplies(on: "test:sr", count: count / 10, timeout: 60, settled: false) {
                let result = try #require(reply["result"] as? [String: Any], "\(reply)")
                for plan in try #require(result["execution_plans"] as? [[String: Any]]) {
                    let id = try #require(plan["id"] as? String)
                    let recommendation = try #require(plan["recommendation_id"] as? String)
                    guard let n = Int(recommendation.dropFirst(3)) else { throw HarnessError.malformed("plan \(id) of \(recommendation)") }
                    plans[id] = n
                }
            }
            #expect(plans.count == count && Set(plans.values).count == count)
            return plans
        }

        /// The in-flight list where the daemon `worker` takes step results, as it named it in its
        /// index (`coord:inflight-lists:<worker>`, list → queue).
        func resultsList(of worker: String, _ h: Harness) throws -> String {
            var found: String?
            try h.wait("\(worker) to name its in-flight list of step results") {
                let index = (try h.redis.send("HGETALL", h.keys.inflightLists(worker: worker)).array ?? []).compactMap(\.string)
                found = stride(from: 0, to: index.count - 1, by: 2).first { index[$0 + 1] == h.keys.stepResults }.map { index[$0] }
                return found != nil
            }
            return try #require(found)
        }
    }
}
