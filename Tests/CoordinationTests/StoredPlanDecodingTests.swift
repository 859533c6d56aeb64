import Foundation
import Testing
@testable import Coordination

/// `ExecutionPlan.init(stored:)`, the lexer's reader of stored plans: the same plan as
/// `WireJSON.decoder()` from what the daemon writes and from `JSONEncoder`'s spelling, and an
/// error naming the path for anything else.
@Suite("Stored plans, read with JSONLexer")
struct StoredPlanDecodingTests {
    static let at = Date(timeIntervalSince1970: 1_764_590_400.5)

    /// A plan with every optional member set, maps of every kind, and names a plain-key reader
    /// could not take (escapes, non-ASCII).
    static func fullPlan() -> ExecutionPlan {
        var steps: [ExecutionStep] = []
        for (i, action) in ["take_snapshot", "migrate_workload", "validate_quality"].enumerated() {
            var step = ExecutionStep(id: "s-\(i)", action: action, agentID: "agent-1",
                                     parameters: ["région": "eu-west-1", "q\"uote": 1.5, "list": [1, "two", nil, true],
                                                  "nested": ["a": ["b": ["c": -2e-7]]]],
                                     critical: i != 2, reversible: i == 0, status: [.completed, .failed, .pending][i])
            if i < 2 {
                step.result = ["output": ["lines": ["ok", "日本"], "exit": 0], "empty": [:]]
                step.startedAt = at
                step.completedAt = at.addingTimeInterval(1.25)
                step.durationMs = 1250
            }
            if i == 0 { step.rollbackData = ["snapshot_id": "snap-1"]; step.rollbackError = "snapshot gone" }
            if i == 1 { step.error = "agent failed it\n(line two)" }
            steps.append(step)
        }
        var plan = ExecutionPlan(id: "plan-1", recommendationID: "rec-1", customerID: "cust-1", steps: steps, createdAt: at)
        plan.status = .rolledBack
        plan.currentStep = 1
        plan.startedAt = at
        plan.completedAt = at.addingTimeInterval(2)
        plan.rolledBackAt = at.addingTimeInterval(3)
        plan.totalDurationMs = 3000
        plan.metadata = ["source": "test", "\u{1F389}": ["x": nil]]
        plan.rollbackReason = "critical_step_failed"
        plan.cancelReason = "dependency rec-0 failed"
        return plan
    }

    private func decoderPlan(_ bytes: [UInt8]) throws -> ExecutionPlan {
        try WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes))
    }

    private func error(_ json: String) -> String? {
        do {
            _ = try ExecutionPlan(stored: Array(json.utf8))
            return nil
        } catch {
            return error.message
        }
    }

    @Test("what the daemon writes and what JSONEncoder writes read back as JSONDecoder reads them")
    func sameAsJSONDecoder() throws {
        let minimal = ExecutionPlan(id: "p", recommendationID: "r", customerID: "c",
                                    steps: [ExecutionStep(id: "s", action: "scale_down", agentID: "a")], createdAt: Self.at)
        for plan in [Self.fullPlan(), minimal] {
            let written = WireJSON.bytes(plan)
            #expect(try ExecutionPlan(stored: written) == plan)
            #expect(try ExecutionPlan(stored: written) == decoderPlan(written))
            let encoded = Array(try WireJSON.encoder().encode(plan))
            #expect(try ExecutionPlan(stored: encoded) == decoderPlan(encoded))
        }
    }

    @Test("null optional members are absent, unknown members are skipped, whitespace is allowed")
    func optionalAndUnknown() throws {
        let json = """
         { "id": "p", "recommendation_id": "r", "customer_id": "c", "status": "running", "future": {"x": [1, {"y": null}]},
           "created_at": "2026-12-01T12:00:00.000Z", "started_at": null, "metadata": null, "current_step": null,
           "steps": [ {"id": "s", "action": "a", "agent_id": "g", "critical": true, "reversible": false, "status": "pending",
                       "parameters": null, "result": null, "duration_ms": null, "new_member": "ignored"} ] }\t
        """
        let plan = try ExecutionPlan(stored: Array(json.utf8))
        #expect(plan == (try decoderPlan(Array(json.utf8))))
        #expect(plan.startedAt == nil && plan.metadata == nil && plan.currentStep == 0)
        #expect(plan.steps[0].parameters.isEmpty && plan.steps[0].result == nil)
    }

    @Test("anything else is an error naming the member and the byte")
    func errors() {
        let step = #"{"id":"s","action":"a","agent_id":"g","critical":true,"reversible":false,"status":"pending"}"#
        func plan(_ members: String, steps: String? = nil) -> String {
            #"{"id":"p","recommendation_id":"r","customer_id":"c","status":"running","created_at":"2026-12-01T12:00:00Z","steps":[\#(steps ?? step)]\#(members)}"#
        }
        #expect(error(plan("")) == nil)
        #expect(error(#"{"id":"p"}"#)?.hasPrefix("recommendation_id: required") == true)
        #expect(error(plan(#","id":"q""#))?.hasPrefix("id: given twice") == true)
        #expect(error(plan(#","status":"paused""#))?.hasPrefix("status: given twice") == true)
        #expect(error(plan("").replacingOccurrences(of: #""status":"running""#, with: #""status":"paused""#))?
            .hasPrefix(#"status: unknown status "paused""#) == true)
        #expect(error(plan("").replacingOccurrences(of: "2026-12-01T12:00:00Z", with: "yesterday"))?
            .hasPrefix(#"created_at: not an RFC 3339 timestamp: "yesterday""#) == true)
        #expect(error(plan(#","current_step":"1""#))?.hasPrefix("current_step: expected an integer") == true)
        #expect(error(plan(#","metadata":[1]"#))?.hasPrefix("metadata: expected an object") == true)
        #expect(error(plan("", steps: step.replacingOccurrences(of: #""critical":true"#, with: #""critical":"yes""#)))?
            .hasPrefix("steps[0].critical: expected true or false") == true)
        #expect(error(plan("", steps: step + "," + step.replacingOccurrences(of: #""agent_id":"g","#, with: "")))?
            .hasPrefix("steps[1].agent_id: required") == true)
        #expect(error(plan("", steps: "5"))?.hasPrefix("steps[0]: expected an object") == true)
        #expect(error(plan(#","metadata":{"a":1,"a":2}"#))?.hasPrefix(#"member "a" given twice"#) == true)
        #expect(error(plan("") + " x")?.hasPrefix("unexpected data after the plan at byte") == true)
        #expect(error(String(plan("").dropLast()))?.contains("unexpected end of input") == true)
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(error(plan(#","metadata":{"deep":\#(deep)}"#))?.hasPrefix("nested deeper than \(ExecutionPlan.storedMaxDepth)") == true)
    }

    @Test("maps keep member names of any spelling; plain-key reading stays the fast path's")
    func anyNames() throws {
        let json = #"{"caf\u00e9": {"a\"b": [{"日本": 1}]}}"#
        let object: [String: JSONValue] = try Array(json.utf8).withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer)
            return try lexer.object(maxDepth: 8, anyNames: true)
        }
        #expect(object == ["café": ["a\"b": [["日本": 1]]]])
        let plain: Result<[String: JSONValue], JSONLexer.Malformed> = Array(json.utf8).withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer)
            do throws(JSONLexer.Malformed) { return .success(try lexer.object(maxDepth: 8)) } catch { return .failure(error) }
        }
        #expect((try? plain.get()) == nil)
    }
}
