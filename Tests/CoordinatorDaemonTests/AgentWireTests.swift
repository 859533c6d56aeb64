import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// The test acts as the agent of PROTOCOL.md section 5 (`--executor agents`): it pops the
    /// step messages itself, checks their exact shape, and writes results by hand.
    @Suite("The agents executor's wire, as an agent sees it", .sharesMachine)
    struct AgentWireTests {
        static let required: Set<String> = ["plan_id", "step_id", "step_index", "action", "parameters", "rollback", "deadline"]

        /// The next step message for `agent`, checked against the section 5 shape.
        func popStep(_ h: Harness, agent: String, rollback: Bool, timeout: Double = 20) throws -> [String: Any] {
            let step = try h.reply(on: h.keys.agentSteps(agent), timeout: timeout)
            var expected = Self.required
            if rollback { expected.insert("rollback_data") }
            if step["attempt"] != nil { expected.insert("attempt") }  // v2 (section 5), where implemented
            #expect(Set(step.keys) == expected, "\(step)")
            #expect(step["rollback"] as? Bool == rollback)
            #expect(step["parameters"] is [String: Any])
            if let attempt = step["attempt"] { #expect((attempt as? String)?.isEmpty == false) }
            let deadline = try #require(parseDate(step["deadline"] as? String), "deadline: \(step["deadline"] ?? "nil")")
            #expect(deadline > Date(), "a fresh step is not already past its deadline")
            return step
        }

        /// A result for `step`, echoing `attempt` and `rollback` as v2 asks (ignored by v1).
        func result(for step: [String: Any], ok: Bool, extra: [String: Any] = [:]) -> String {
            var object: [String: Any] = ["plan_id": step["plan_id"] ?? "", "step_id": step["step_id"] ?? "", "ok": ok,
                                         "rollback": step["rollback"] ?? false]
            if let attempt = step["attempt"] { object["attempt"] = attempt }
            if ok { object["result"] = [:] as [String: Any] } else { object["error"] = "agent says no" }
            for (k, v) in extra { object[k] = v }
            return Wire.json(object)
        }

        func startPlan(_ h: Harness, agent: String) throws -> String {
            try h.push(Wire.coordinate("wire", customer: "wire", replyTo: "test:wire", executeNow: true,
                                       [Wire.recommendation("spot", agent: agent, action: "migrate_to_spot", resources: ["i-1"],
                                                            parameters: ["region": "eu-1", "max_price": 0.5])]))
            let result = try #require((try h.reply(on: "test:wire"))["result"] as? [String: Any])
            return try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String)
        }

        @Test("steps carry plan, step, index, action, parameters, deadline; a rollback carries the step's rollback_data")
        func shapes() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "wire-agent")
            let plan = try #require(try h.plan(planID))
            let steps = try #require(plan["steps"] as? [[String: Any]])

            let first = try popStep(h, agent: "wire-agent", rollback: false)
            #expect(first["plan_id"] as? String == planID)
            #expect(first["step_index"] as? Int == 0)
            #expect(first["step_id"] as? String == steps[0]["id"] as? String)
            #expect(first["action"] as? String == "take_snapshot")
            let parameters = try #require(first["parameters"] as? [String: Any])
            #expect(parameters["region"] as? String == "eu-1")
            #expect(parameters["max_price"] as? Double == 0.5)
            // Nothing else is dispatched until this step is answered.
            #expect(try h.length(h.keys.agentSteps("wire-agent")) == 0)
            try h.push(result(for: first, ok: true, extra: ["rollback_data": ["snapshot_id": "snap-42"]]), to: h.keys.stepResults)

            let second = try popStep(h, agent: "wire-agent", rollback: false)
            #expect(second["step_index"] as? Int == 1)
            #expect(second["step_id"] as? String == steps[1]["id"] as? String)
            #expect(second["action"] as? String == "migrate_workload")
            if let a = first["attempt"] as? String { #expect(second["attempt"] as? String != a) }
            try h.push(result(for: second, ok: false), to: h.keys.stepResults)

            // The critical step failed: step 0 is rolled back, with what the agent gave back.
            let undo = try popStep(h, agent: "wire-agent", rollback: true)
            #expect(undo["step_index"] as? Int == 0)
            #expect(undo["step_id"] as? String == steps[0]["id"] as? String)
            #expect(undo["action"] as? String == "take_snapshot")
            #expect((undo["rollback_data"] as? [String: Any])?["snapshot_id"] as? String == "snap-42")
            if let a = first["attempt"] as? String { #expect(undo["attempt"] as? String != a) }
            try h.push(result(for: undo, ok: true), to: h.keys.stepResults)

            let done = try h.waitForPlan(planID, status: "rolled_back")
            let final = try #require(done["steps"] as? [[String: Any]])
            #expect(final.map { $0["status"] as? String } == ["rolled_back", "failed", "pending"])
            #expect((final[1]["error"] as? String)?.contains("agent says no") == true)
            #expect(try h.deadLetters().isEmpty)
        }

        @Test("malformed step results are dead-lettered with their code; the plan goes on")
        func malformedResults() throws {
            let h = try Harness()
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            try h.startDaemon { $0.executor = .agents; $0.stepTimeout = 60 }
            let planID = try startPlan(h, agent: "wire-agent")
            let first = try popStep(h, agent: "wire-agent", rollback: false)
            // Not JSON at all ("{not json", and bytes that are not UTF-8) should be invalid_json
            // (PROTOCOL.md 2.4); the executor dead-letters every unreadable result as
            // invalid_request (PlanExecutor.collectResults), so for those two only the dead letter
            // itself is checked here.
            let bad: [(String, String)] = [
                ("{not json", "?"),
                (#"{"plan_id":5,"step_id":"x","ok":true}"#, "invalid_request"),
                (Wire.json(["plan_id": planID, "ok": true]), "invalid_request"),
                (Wire.json(["plan_id": planID, "step_id": first["step_id"] ?? ""]), "invalid_request"),
            ]
            for (raw, _) in bad { try h.push(raw, to: h.keys.stepResults) }
            try h.push(bytes: [0xC3, 0x28], to: h.keys.stepResults)
            try h.wait("five dead letters") { try h.deadLetters().count >= bad.count + 1 }
            let dead = try h.deadLetters()
            #expect(dead.count == bad.count + 1)
            #expect(dead.allSatisfy { $0["queue"] as? String == h.keys.stepResults })
            for (raw, code) in bad {
                let letter = dead.first { $0["raw"] as? String == raw }
                if code == "?" {
                    #expect(letter.flatMap(Harness.code) != nil, "\(raw)")
                } else {
                    #expect(letter.flatMap(Harness.code) == code, "\(raw)")
                }
            }
            #expect(dead.first { $0["raw_base64"] != nil }.flatMap(Harness.code) != nil)
            // A result with a stale attempt token (v2) is refused and changes nothing.
            if first["attempt"] != nil {
                var forged = first
                forged["attempt"] = "not-the-current-one"
                try h.push(result(for: forged, ok: false), to: h.keys.stepResults)
                try h.wait("the forged result's dead letter") { try h.deadLetters().count == bad.count + 2 }
                let refused = try h.deadLetters().first { ($0["raw"] as? String)?.contains("not-the-current-one") == true }
                #expect(refused.flatMap(Harness.code) == "forbidden")
            }
            #expect(try h.plan(planID)?["status"] as? String == "running")
            // The real result still counts: the plan goes on to its next step.
            try h.push(result(for: first, ok: true), to: h.keys.stepResults)
            let second = try popStep(h, agent: "wire-agent", rollback: false)
            #expect(second["step_index"] as? Int == 1)
            #expect(try h.length(h.keys.stepResults) == 0)
        }
    }
}
