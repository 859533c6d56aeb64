import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md section 5 (v2) with the agents executor, the test acting as the agent: attempt
    /// tokens, results that answer the wrong dispatch, steps withdrawn at their deadline, malformed
    /// results, and an executor that reads a plan again after a failed commit.
    @Suite("Step attempts", .sharesMachine)
    struct StepAttemptTests {
        /// Starts one plan of `action` for `agent` and returns its id.
        func startPlan(_ h: Harness, agent: String, action: String = "resize", id: String = "sa") throws -> String {
            try h.push(Wire.coordinate(id, customer: "cust-\(id)", replyTo: "test:sa", executeNow: true,
                                       [Wire.recommendation("r", agent: agent, action: action, resources: ["i-1"])]))
            let reply = try h.reply(on: "test:sa")
            let result = try #require(reply["result"] as? [String: Any], "\(reply)")
            return try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
        }

        /// Takes the next step message from the agent's list, as an agent does.
        func takeStep(_ h: Harness, agent: String, timeout: Double = 15) throws -> (raw: [UInt8], step: [String: Any]) {
            guard let (_, raw) = try h.redis.blockingPopRight("coord:agent:\(agent):steps", timeout: timeout) else {
                throw HarnessError.timeout("no step for \(agent)")
            }
            return (raw, try Harness.object(raw))
        }

        func answer(_ h: Harness, _ step: [String: Any], ok: Bool = true, attempt: String? = nil, rollback: Bool? = nil) throws -> String {
            var result: [String: Any] = ["plan_id": step["plan_id"]!, "step_id": step["step_id"]!, "ok": ok,
                                         "attempt": attempt ?? step["attempt"] ?? NSNull(), "rollback": rollback ?? step["rollback"] ?? NSNull()]
            if ok { result["result"] = [:]; result["rollback_data"] = ["snapshot": "s-1"] } else { result["error"] = "agent failed it" }
            let json = Wire.json(result)
            try h.push(json, to: "coord:steps:results")
            return json
        }

        func stepStatuses(_ h: Harness, _ planID: String) throws -> [String] {
            ((try h.plan(planID))?["steps"] as? [[String: Any]] ?? []).map { $0["status"] as? String ?? "" }
        }

        @Test("every dispatch carries a fresh attempt; a result with another attempt is refused as forbidden and changes nothing")
        func attemptMismatch() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "manual-1")
            let (_, step) = try takeStep(h, agent: "manual-1")
            let attempt = try #require(step["attempt"] as? String)
            #expect(attempt.count == 32 && attempt.allSatisfy(\.isHexDigit))
            #expect(step["rollback"] as? Bool == false)
            #expect(step["deadline"] as? String != nil)

            _ = try answer(h, step, attempt: String(repeating: "0", count: 32))
            _ = try answer(h, step, attempt: attempt, rollback: true)
            try h.wait("two refusals") { try h.length("coord:dead") == 2 }
            let dead = try h.deadLetters()
            #expect(dead.allSatisfy { ($0["error"] as? [String: Any])?["code"] as? String == "forbidden" && $0["queue"] as? String == "coord:steps:results" })
            try h.stepResultsHandled(plans: [planID])
            #expect(try stepStatuses(h, planID) == ["running"])

            // The marker that must come after: the right answer is still taken (its attempt was
            // not spent by the refused ones: no third dead letter), and the step ran once.
            _ = try answer(h, step)
            _ = try h.waitForPlan(planID, status: "completed")
            #expect(try h.length("coord:dead") == 2)
            #expect(try h.events(plan: planID).filter { $0["type"] as? String == "step.completed" }.count == 1)
            // The answered attempt is spent: its duplicate is refused too.
            _ = try answer(h, step)
            try h.wait("the duplicate refused") { try h.length("coord:dead") == 3 }
        }

        @Test("a duplicated forward result is never taken as the rollback's")
        func duplicateForwardResult() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "manual-2", action: "migrate_to_spot")
            let (_, first) = try takeStep(h, agent: "manual-2")
            let forward = try answer(h, first)
            let (_, second) = try takeStep(h, agent: "manual-2")
            #expect(second["step_index"] as? Int == 1)
            _ = try answer(h, second, ok: false)
            let (_, rollback) = try takeStep(h, agent: "manual-2")
            #expect(rollback["rollback"] as? Bool == true && rollback["step_index"] as? Int == 0)
            #expect(rollback["attempt"] as? String != first["attempt"] as? String)

            try h.push(forward, to: "coord:steps:results")  // the first answer, delivered twice
            try h.wait("the duplicate refused") { try h.length("coord:dead") == 1 }
            #expect(((try h.deadLetters()).first?["error"] as? [String: Any])?["code"] as? String == "forbidden")
            try h.stepResultsHandled(plans: [planID])
            #expect(try stepStatuses(h, planID) == ["completed", "failed", "pending"])
            #expect((try h.plan(planID))?["status"] as? String == "running")

            // The rollback's own answer, after it, is still taken: the duplicate spent nothing.
            _ = try answer(h, rollback)
            let plan = try h.waitForPlan(planID, status: "rolled_back")
            #expect((plan["steps"] as? [[String: Any]])?.first?["status"] as? String == "rolled_back")
            #expect(try h.length("coord:dead") == 1)
        }

        @Test("a step whose deadline passed is withdrawn from the agent's list, so it never runs late")
        func lateStepWithdrawn() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 1 }
            let planID = try startPlan(h, agent: "asleep")
            try h.wait("the step dispatched") { try h.length("coord:agent:asleep:steps") == 1 }
            let plan = try h.waitForPlan(planID, status: "rolled_back", timeout: 20)
            #expect(((plan["steps"] as? [[String: Any]])?.first?["error"] as? String)?.contains("step-timeout") == true)
            #expect(try h.length("coord:agent:asleep:steps") == 0)
            #expect(try h.redis.send("KEYS", "coord:plan:*:attempt").array?.isEmpty == true)
        }

        @Test("malformed step results are dead-lettered with a clear code")
        func malformedResults() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "manual-3")
            let (_, step) = try takeStep(h, agent: "manual-3")
            let cases: [(String, String, String)] = [
                ("{oops", "invalid_json", ""),
                ("[1,2]", "invalid_request", ""),
                (Wire.json(["plan_id": planID, "step_id": step["step_id"]!, "ok": true, "rollback": false]), "invalid_request", "attempt"),
                (Wire.json(["plan_id": planID, "step_id": step["step_id"]!, "ok": true, "attempt": step["attempt"]!]), "invalid_request", "rollback"),
                (Wire.json(["plan_id": "p*x", "step_id": "s", "ok": true, "attempt": "a", "rollback": false]), "invalid_request", "plan_id"),
                (Wire.json(["plan_id": planID, "step_id": step["step_id"]!, "ok": "yes", "attempt": step["attempt"]!, "rollback": false]), "invalid_request", "ok"),
            ]
            for (raw, _, _) in cases { try h.push(raw, to: "coord:steps:results") }
            try h.wait("\(cases.count) dead letters") { try h.length("coord:dead") == cases.count }
            let dead = try h.deadLetters()
            for (raw, code, path) in cases {
                let letter = try #require(dead.first { $0["raw"] as? String == raw }, "\(raw)")
                let error = try #require(letter["error"] as? [String: Any])
                #expect(error["code"] as? String == code, "\(raw)")
                #expect((error["message"] as? String)?.hasPrefix(path) == true, "\(error)")
            }
            #expect(try stepStatuses(h, planID) == ["running"])
            _ = try answer(h, step)
            _ = try h.waitForPlan(planID, status: "completed")
        }

        @Test("after a failed commit the executor reads the plan again: the step is sent, not waited on until --step-timeout")
        func reloadAfterFailedCommit() throws {
            let h = try Harness()
            // The agent's list holds a string: pushing the step fails with WRONGTYPE.
            _ = try h.redis.send("SET", "coord:agent:blocked:steps", "not a list")
            let log = LogRecorder()
            try h.startDaemon(log: log) { $0.executor = .agents; $0.stepTimeout = 120 }
            let planID = try startPlan(h, agent: "blocked")
            try h.wait("the plan to start") { (try h.plan(planID))?["status"] as? String == "running" }
            // The marker that comes after the refused commit: the executor's own line saying
            // Redis refused it (logged once the commit's answer is read), twice, so that the
            // plan was read again after the first refusal and tried once more.
            try h.wait("two refused commits of the step's dispatch") {
                log.lines.count { $0.message.hasPrefix("Redis refused a plan's commit") && $0.metadata["plan_id"] == planID } >= 2
            }
            let refusal = try #require(log.lines.first { $0.metadata["plan_id"] == planID && $0.level == .error })
            #expect(refusal.metadata["error"]?.contains("WRONGTYPE") == true, "\(refusal)")
            // Memory never ahead of Redis: the step is not started in the stored plan.
            #expect(try stepStatuses(h, planID) == ["pending"])
            _ = try h.redis.send("DEL", "coord:agent:blocked:steps")
            let (_, step) = try takeStep(h, agent: "blocked", timeout: 15)
            #expect(step["plan_id"] as? String == planID)
            try h.wait("step.started written") {
                try h.events(plan: planID).contains { $0["type"] as? String == "step.started" }
            }
            _ = try answer(h, step)
            _ = try h.waitForPlan(planID, status: "completed")
            #expect(try h.events(plan: planID).filter { $0["type"] as? String == "step.started" }.count == 1)
        }

        @Test("a step that Redis refuses to send (its agent list holds a string) fails after --step-timeout, with the reason; tries back off")
        func unsendableStep() throws {
            let h = try Harness()
            _ = try h.redis.send("SET", "coord:agent:walled:steps", "not a list")
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 2 }
            _ = try h.redis.send("CONFIG", "RESETSTAT")
            let planID = try startPlan(h, agent: "walled")
            // Its only step failed before it ran, so nothing is left to undo: rolled back.
            let plan = try h.waitForPlan(planID, status: "rolled_back", timeout: 30)
            let step = try #require((plan["steps"] as? [[String: Any]])?.first)
            #expect(step["status"] as? String == "failed")
            let error = try #require(step["error"] as? String)
            #expect(error.contains("could not be sent") && error.contains("WRONGTYPE"), "\(error)")
            #expect(try h.redis.send("GET", "coord:agent:walled:steps").string == "not a list")
            #expect(try h.events(plan: planID).filter { $0["type"] as? String == "step.failed" }.count == 1)
            // Backed off, not once per tick: each try checks the list's type once (Redis's own
            // counter, not a timer); 0.1 s doubling makes about 5 tries in the 2 s, with the
            // request's and the plan's other commits a few dozen TYPE calls, where a try per
            // tick made thousands.
            let tries = try h.redis.send("INFO", "commandstats").string ?? ""
            let typeCalls = tries.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_type:") }
                .flatMap { $0.split(separator: "=").dropFirst().first?.split(separator: ",").first }.flatMap { Int($0) } ?? 0
            #expect(typeCalls > 0 && typeCalls < 400, "TYPE calls: \(typeCalls)")
        }

        @Test("a plan whose lease is changed under it: its commit fails, it is read again and left to Redis; the held result is kept for the owner")
        func leaseChangedUnderIt() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "manual-4")
            let (_, step) = try takeStep(h, agent: "manual-4")
            _ = try h.redis.send("SET", "coord:plan:{\(planID)}:lease", "someone-else", "PX", 60_000)
            let before = try #require(try h.redis.send("GET", "coord:plan:{\(planID)}").bytes)
            _ = try answer(h, step)
            try h.wait("the result kept in the plan's mailbox") { try h.length("coord:plan:{\(planID)}:results") == 1 }
            // The executor has let the plan go (its commit failed, it read the plan again and
            // left it to Redis): every loop is idle, the executor blocked on the ready list,
            // which it does only when it runs no plan. Nothing of it can change the plan now.
            try h.waitUntilReady()
            #expect(try h.redis.send("GET", "coord:plan:{\(planID)}").bytes == before)
            #expect(!(try h.events(plan: planID).contains { $0["type"] as? String == "step.completed" }))
            for key in try h.scanKeys("coord:inflight:*steps:results*") {
                #expect(try h.length(key) == 0, "\(key)")
            }
        }

        @Test("a plan whose lease is deleted under it is taken over and rolled back, and its step withdrawn from the agent's list")
        func leaseDeletedUnderIt() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "manual-5")
            try h.wait("the step dispatched") { try h.length("coord:agent:manual-5:steps") == 1 }
            _ = try h.redis.send("DEL", "coord:plan:{\(planID)}:lease")
            let plan = try h.waitForPlan(planID, status: "rolled_back", timeout: 20)
            #expect(plan["rollback_reason"] as? String == "worker_lost")
            #expect(try h.length("coord:agent:manual-5:steps") == 0)
            #expect(try h.redis.send("EXISTS", "coord:plan:{\(planID)}:attempt").integer == 0)
        }

        @Test("`coordinatord agent` refuses a step past its deadline and echoes attempt and rollback")
        func agentRefusesLateSteps() throws {
            let h = try Harness()
            _ = try h.launch(["agent", "--id", "echo-agent"])
            let past = "2020-01-01T00:00:00.000Z"
            let future = "2999-01-01T00:00:00.000Z"
            func step(_ id: String, _ deadline: String, rollback: Bool) -> String {
                Wire.json(["plan_id": "p-1", "step_id": id, "step_index": 0, "action": "resize", "parameters": [:],
                           "rollback": rollback, "attempt": "tok-\(id)", "deadline": deadline])
            }
            try h.push(step("late", past, rollback: false), to: "coord:agent:echo-agent:steps")
            try h.push(step("on-time", future, rollback: false), to: "coord:agent:echo-agent:steps")
            try h.push(step("undo", future, rollback: true), to: "coord:agent:echo-agent:steps")
            try h.wait("two answers", timeout: 20) { try h.length("coord:steps:results") >= 2 }
            // A marker step after them (RPUSH: the agent pops from the left, one at a time), and
            // its answer: every step before it has been popped and answered or refused.
            _ = try h.redis.send("RPUSH", "coord:agent:echo-agent:steps", step("marker", future, rollback: false))
            try h.wait("the marker's answer", timeout: 20) { try h.length("coord:steps:results") >= 3 }
            #expect(try h.length("coord:agent:echo-agent:steps") == 0)
            let answers = try #require(try h.redis.send("LRANGE", "coord:steps:results", 0, -1).array).map { try Harness.object(try #require($0.bytes)) }
            #expect(answers.count == 3)
            #expect(Set(answers.compactMap { $0["attempt"] as? String }) == ["tok-on-time", "tok-undo", "tok-marker"])
            #expect(answers.first { $0["attempt"] as? String == "tok-undo" }?["rollback"] as? Bool == true)
            #expect(answers.first { $0["attempt"] as? String == "tok-on-time" }?["rollback"] as? Bool == false)
        }
    }
}
