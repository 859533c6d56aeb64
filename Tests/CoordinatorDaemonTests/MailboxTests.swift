import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md sections 5 and 6 with two daemons: a step result popped from
    /// `coord:steps:results` by a daemon that does not hold the plan's lease is forwarded to the
    /// plan's mailbox (`coord:plan:{id}:results`) and applied, once, by the lease holder.
    @Suite("Step results reaching a daemon that is not running the plan", .sharesMachine)
    struct MailboxTests {
        let agent = RealRedis.AgentWireTests()

        /// The plan's events of `type`, by step index (nil for plan-level events).
        func count(_ events: [[String: Any]], _ type: String) -> [Int?: Int] {
            var counts: [Int?: Int] = [:]
            for event in events where event["type"] as? String == type { counts[event["step_index"] as? Int, default: 0] += 1 }
            return counts
        }

        /// Every plan-level and step-level event of a plan that ran `steps` steps successfully,
        /// exactly once each, and nothing of a failure.
        func expectRanOnce(_ h: Harness, plan planID: String, steps: Int) throws {
            let events = try h.events(plan: planID)
            #expect(count(events, "plan.started") == [nil: 1])
            #expect(count(events, "plan.completed") == [nil: 1])
            let each = Dictionary(uniqueKeysWithValues: (0..<steps).map { (Optional($0), 1) })
            #expect(count(events, "step.started") == each)
            #expect(count(events, "step.completed") == each)
            for type in ["step.failed", "step.rolled_back", "plan.rolled_back", "plan.cancelled"] {
                #expect(count(events, type).isEmpty, "\(type) for \(planID)")
            }
        }

        /// The daemon holding a plan's lease: the holder's value is its worker id, followed by
        /// `/<lane>` for an executor lane past the first (`--plan-workers`).
        static func leaseWorker(_ planID: String, _ h: Harness) throws -> String? {
            try h.redis.send("GET", h.keys.planLease(planID)).string.map { String($0.split(separator: "/").first ?? "") }
        }

        @Test("the lease holder frozen: the other daemon forwards the result to the plan's mailbox; the holder applies it once")
        func forwardedToMailbox() throws {
            let h = try Harness()
            // The holder runs alone when the plan starts, so the lease is its. A long lease and
            // heartbeat keep the freeze below from looking like a dead worker (no takeover).
            let holder = try h.launch(["run", "--executor", "agents", "--step-timeout", "60", "--plan-lease", "30",
                                       "--heartbeat-ttl", "30", "--sim-speed", "0"])
            defer { Freeze.thaw(holder) }
            let holderID = try Freeze.workerID(of: holder, h)
            let planID = try agent.startPlan(h, agent: "mbx-agent")
            // Each step goes to its own agent's list (validate_quality to application-agent).
            let agents = try #require(try h.plan(planID)?["steps"] as? [[String: Any]]).map { $0["agent_id"] as? String ?? "?" }
            let steps = agents.count
            #expect(steps >= 2 && agents[0] == "mbx-agent" && agents[1] == "mbx-agent")
            let first = try agent.popStep(h, agent: "mbx-agent", rollback: false)
            #expect(try Self.leaseWorker(planID, h) == holderID)

            // The other daemon, live, with the holder frozen: it is the only one popping results.
            let other = try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60; $0.planLease = 30 }
            try h.wait("the other daemon's heartbeat") { try h.redis.send("EXISTS", h.keys.worker(other.workerID)).integer == 1 }
            try Freeze.stop(holder, h)
            try h.push(agent.result(for: first, ok: true, extra: ["rollback_data": ["snapshot_id": "snap-1"]]), to: h.keys.stepResults)
            let mailbox = h.keys.planResults(planID)
            try h.wait("the result forwarded to the plan's mailbox") {
                try h.length(h.keys.stepResults) == 0 && h.length(mailbox) == 1 && h.inflightCount() == 0
            }
            // Forwarded, not applied: the plan is the frozen holder's, and it has not moved.
            let held = try #require(try h.plan(planID))
            #expect((held["steps"] as? [[String: Any]])?.first?["status"] as? String == "running")
            #expect(try Self.leaseWorker(planID, h) == holderID)
            #expect(try h.deadLetters().isEmpty)

            // Thawed, the holder finds the result in the mailbox: step 0 completes, step 1 goes out.
            Freeze.thaw(holder)
            let second = try agent.popStep(h, agent: "mbx-agent", rollback: false)
            #expect(second["step_index"] as? Int == 1)
            #expect(try h.length(mailbox) == 0)
            let done = try #require(try h.plan(planID)?["steps"] as? [[String: Any]])
            #expect(done[0]["status"] as? String == "completed")
            #expect((done[0]["rollback_data"] as? [String: Any])?["snapshot_id"] as? String == "snap-1")

            // The remaining steps, answered with both daemons live (either may pop them).
            try h.push(agent.result(for: second, ok: true), to: h.keys.stepResults)
            for index in 2..<steps {
                let step = try agent.popStep(h, agent: agents[index], rollback: false)
                #expect(step["step_index"] as? Int == index)
                try h.push(agent.result(for: step, ok: true), to: h.keys.stepResults)
            }
            let final = try h.waitForPlan(planID, status: "completed")
            #expect((final["steps"] as? [[String: Any]])?.allSatisfy { $0["status"] as? String == "completed" } == true)
            try expectRanOnce(h, plan: planID, steps: steps)
            #expect(try h.length(mailbox) == 0)
            #expect(try h.length(h.keys.stepResults) == 0)
            for name in Set(agents) { #expect(try h.length(h.keys.agentSteps(name)) == 0, "nothing dispatched twice") }
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("an oversized result popped by the other daemon: its failure goes to the plan's mailbox, and the holder fails the step at once, not at --step-timeout")
        func oversizedForwardedToMailbox() throws {
            let h = try Harness()
            let holder = try h.launch(["run", "--executor", "agents", "--step-timeout", "120", "--plan-lease", "30",
                                       "--heartbeat-ttl", "30", "--sim-speed", "0"])
            defer { Freeze.thaw(holder) }
            let holderID = try Freeze.workerID(of: holder, h)
            let planID = try agent.startPlan(h, agent: "mbx-agent")
            let first = try agent.popStep(h, agent: "mbx-agent", rollback: false)
            #expect(try Self.leaseWorker(planID, h) == holderID)

            let other = try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 120; $0.planLease = 30 }
            try h.wait("the other daemon's heartbeat") { try h.redis.send("EXISTS", h.keys.worker(other.workerID)).integer == 1 }
            try Freeze.stop(holder, h)
            // As an agent writes it, its identity first: only the first --max-message-bytes are read.
            let identity = ["plan_id", "step_id", "attempt"].map { "\"\($0)\":\"\(first[$0] as? String ?? "")\"" }
            let huge = "{" + identity.joined(separator: ",") + ",\"rollback\":false,\"ok\":true,\"result\":{\"blob\":\""
                + String(repeating: "R", count: 6_600_000) + "\"}}"
            try h.push(huge, to: h.keys.stepResults)
            let mailbox = h.keys.planResults(planID)
            try h.wait("the failure forwarded to the plan's mailbox") {
                try h.length(h.keys.stepResults) == 0 && h.length(mailbox) == 1 && h.inflightCount() == 0
            }
            let letters = try h.deadLetters()
            #expect(letters.count == 1 && (letters.first?["error"] as? [String: Any])?["code"] as? String == "too_large", "\(letters)")
            let mail = try #require(try h.redis.send("LINDEX", mailbox, 0).bytes)
            #expect(mail.count < 1024, "the mailbox holds a small failure, not the result: \(mail.count) bytes")

            Freeze.thaw(holder)
            let plan = try h.waitForPlan(planID, anyOf: ["failed", "rolled_back"], timeout: 30)
            let step = try #require((plan["steps"] as? [[String: Any]])?.first)
            #expect(step["status"] as? String == "failed")
            #expect((step["error"] as? String)?.hasPrefix("too_large") == true, "\(step["error"] ?? "none")")
            #expect(try h.length(mailbox) == 0)
            #expect(try h.deadLetters().count == 1, "dead-lettered once")
        }

        @Test("one daemon, two executor lanes holding one plan each: every result is applied once, by the lane holding its plan")
        func lanes() throws {
            let h = try Harness()
            // A share of one plan per lane: two plans are held by two lanes, under two names.
            let daemon = try h.startDaemon {
                $0.executor = .agents; $0.stepTimeout = 60; $0.planLease = 10; $0.planWorkers = 2; $0.maxConcurrentPlans = 2
            }
            let planIDs = try (0..<2).map { n in
                try h.push(Wire.coordinate("lane-\(n)", customer: "lane-\(n)", replyTo: "test:lanes", executeNow: true,
                                           [Wire.recommendation("spot", agent: "mbx-agent", action: "migrate_to_spot", resources: ["i-1"])]))
                let result = try #require((try h.reply(on: "test:lanes"))["result"] as? [String: Any])
                return try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
            }
            try h.wait("both plans leased") { try planIDs.allSatisfy { try h.redis.send("EXISTS", h.keys.planLease($0)).integer == 1 } }
            let holders = try Set(planIDs.map { try h.redis.send("GET", h.keys.planLease($0)).string ?? "" })
            #expect(holders == [daemon.workerID, "\(daemon.workerID)/2"])
            try answerAll(h, planIDs)
        }

        /// Acts as the agent for `planIDs` until every step was answered once, then checks each
        /// plan ran once, with nothing left in a mailbox or the results queue, nothing dead.
        func answerAll(_ h: Harness, _ planIDs: [String]) throws {
            var answered: [String: Set<Int>] = [:]
            var steps: [String: Int] = [:]
            for id in planIDs { steps[id] = try #require(try h.plan(id)?["steps"] as? [[String: Any]]).count }
            let total = steps.values.reduce(0, +)
            let lists = ["mbx-agent", "application-agent"].map(h.keys.agentSteps)
            while answered.values.reduce(0, { $0 + $1.count }) < total {
                let popped = try h.redis.send(RedisCommand(arguments: (["BRPOP"] + lists + ["20"]).map { Array($0.utf8) }))
                guard let bytes = popped.array?.last?.bytes else {
                    throw HarnessError.timeout("no step within 20 s; answered \(answered.values.reduce(0) { $0 + $1.count }) of \(total)")
                }
                let step = try Harness.object(bytes)
                #expect(step["rollback"] as? Bool == false)
                let id = try #require(step["plan_id"] as? String)
                let index = try #require(step["step_index"] as? Int)
                #expect(answered[id, default: []].insert(index).inserted, "step \(index) of \(id) dispatched twice")
                try h.push(agent.result(for: step, ok: true), to: h.keys.stepResults)
            }
            for id in planIDs {
                _ = try h.waitForPlan(id, status: "completed")
                try expectRanOnce(h, plan: id, steps: steps[id] ?? 0)
                #expect(try h.length(h.keys.planResults(id)) == 0)
            }
            #expect(try h.length(h.keys.stepResults) == 0)
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("two live daemons, many plans: every result is applied once, wherever it is popped")
        func bothLive() throws {
            let h = try Harness()
            for _ in 0..<2 { try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60; $0.planLease = 10 } }
            let plans = 12
            var planIDs: [String] = []
            for n in 0..<plans {
                try h.push(Wire.coordinate("mbx-\(n)", customer: "mbx-\(n)", replyTo: "test:mbx", executeNow: true,
                                           [Wire.recommendation("spot", agent: "mbx-agent", action: "migrate_to_spot", resources: ["i-1"])]))
                let result = try #require((try h.reply(on: "test:mbx"))["result"] as? [String: Any])
                planIDs.append(try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String))
            }
            try answerAll(h, planIDs)
        }
    }
}
