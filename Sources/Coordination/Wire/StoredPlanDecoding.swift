import Foundation

/// The daemon's stored plans (`coord:plan:<id>`, written by `WireJSON.bytes(_:)`), read with
/// `JSONLexer` in one pass: the executor reads a plan at every step and on every lease round,
/// and `JSONDecoder` (a tree of boxed values, then keyed containers) took several times as long.
/// It reads what the `Decodable` init reads: members in any order, unknown ones skipped, `null`
/// for an optional member is absent. A member given twice, a wrong type, an unknown status or
/// timestamp, or a missing required member is an error naming its path (`steps[1].status`).
extension ExecutionPlan {
    /// Nesting allowed in a stored plan: its maps come from messages read with
    /// `TopLevelJSON.maxDepth`, and sit a few levels further in here.
    public static let storedMaxDepth = TopLevelJSON.maxDepth + 8

    /// The plan stored as `bytes`.
    public init(stored bytes: [UInt8]) throws(JSONLexer.Malformed) {
        let read: Result<ExecutionPlan, JSONLexer.Malformed> = bytes.withUnsafeBufferPointer { buffer in
            var reader = StoredPlanReader(lexer: JSONLexer(buffer))
            do throws(JSONLexer.Malformed) {
                let plan = try reader.plan()
                reader.lexer.skipSpace()
                guard reader.lexer.atEnd else { throw reader.lexer.fail("unexpected data after the plan") }
                return .success(plan)
            } catch {
                return .failure(error)
            }
        }
        self = try read.get()
    }
}

/// `ExecutionPlan.init(stored:)`'s reader.
struct StoredPlanReader {
    var lexer: JSONLexer

    private static let maxDepth = ExecutionPlan.storedMaxDepth

    /// An error naming the member at `path`.
    private func fail(_ path: String, _ what: String) -> JSONLexer.Malformed { lexer.fail("\(path): \(what)") }

    // Paths are autoclosures: built only for an error, never per member read.

    /// Marks member `bit` read; a second time is an error.
    private func once(_ seen: inout UInt32, _ bit: UInt32, _ path: @autoclosure () -> String) throws(JSONLexer.Malformed) {
        guard seen & bit == 0 else { throw fail(path(), "given twice") }
        seen |= bit
    }

    private mutating func string(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> String {
        guard try lexer.peek() == 0x22 else { throw fail(path(), "expected a string") }
        return try lexer.string()
    }

    private mutating func optionalString(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> String? {
        try lexer.null() ? nil : try string(path())
    }

    private mutating func bool(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> Bool {
        let c = try lexer.peek()
        guard c == 0x74 || c == 0x66 else { throw fail(path(), "expected true or false") }
        return try lexer.bool()
    }

    private mutating func int(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> Int {
        let c = try lexer.peek()
        guard c == 0x2D || (c >= 0x30 && c <= 0x39) else { throw fail(path(), "expected an integer") }
        return try lexer.int()
    }

    private mutating func optionalDate(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> Date? {
        guard let text = try optionalString(path()) else { return nil }
        guard let date = Timestamp.date(from: text) else { throw fail(path(), "not an RFC 3339 timestamp: \(WireLimits.quoted(text))") }
        return date
    }

    private mutating func status(_ path: @autoclosure () -> String) throws(JSONLexer.Malformed) -> ExecutionStatus {
        let text = try string(path())
        guard let status = ExecutionStatus(rawValue: text) else { throw fail(path(), "unknown status \(WireLimits.quoted(text))") }
        return status
    }

    private mutating func map(_ path: @autoclosure () -> String, depth: Int) throws(JSONLexer.Malformed) -> [String: JSONValue]? {
        if try lexer.null() { return nil }
        guard try lexer.peek() == 0x7B else { throw fail(path(), "expected an object") }
        return try lexer.object(depth: depth, maxDepth: Self.maxDepth, anyNames: true)
    }

    mutating func plan() throws(JSONLexer.Malformed) -> ExecutionPlan {
        try lexer.expect(0x7B)
        var id: String?, recommendationID: String?, customerID: String?, steps: [ExecutionStep]?
        var status: ExecutionStatus?, createdAt: Date?
        var plan = ExecutionPlan(id: "", recommendationID: "", customerID: "", steps: [], createdAt: Date(timeIntervalSince1970: 0))
        var seen: UInt32 = 0
        if try lexer.peek() == 0x7D { throw fail("id", "required") }
        repeat {
            let k = try lexer.plainKey()
            switch k.count {
            case 2 where lexer.matches(k, "id"): try once(&seen, 1 << 0, "id"); id = try string("id")
            case 17 where lexer.matches(k, "recommendation_id"):
                try once(&seen, 1 << 1, "recommendation_id"); recommendationID = try string("recommendation_id")
            case 11 where lexer.matches(k, "customer_id"): try once(&seen, 1 << 2, "customer_id"); customerID = try string("customer_id")
            case 5 where lexer.matches(k, "steps"): try once(&seen, 1 << 3, "steps"); steps = try stepList()
            case 6 where lexer.matches(k, "status"): try once(&seen, 1 << 4, "status"); status = try self.status("status")
            case 12 where lexer.matches(k, "current_step"):
                try once(&seen, 1 << 5, "current_step"); plan.currentStep = try lexer.null() ? 0 : try int("current_step")
            case 10 where lexer.matches(k, "created_at"):
                try once(&seen, 1 << 6, "created_at")
                guard let date = try optionalDate("created_at") else { throw fail("created_at", "must not be null") }
                createdAt = date
            case 10 where lexer.matches(k, "started_at"): try once(&seen, 1 << 7, "started_at"); plan.startedAt = try optionalDate("started_at")
            case 12 where lexer.matches(k, "completed_at"):
                try once(&seen, 1 << 8, "completed_at"); plan.completedAt = try optionalDate("completed_at")
            case 14 where lexer.matches(k, "rolled_back_at"):
                try once(&seen, 1 << 9, "rolled_back_at"); plan.rolledBackAt = try optionalDate("rolled_back_at")
            case 17 where lexer.matches(k, "total_duration_ms"):
                try once(&seen, 1 << 10, "total_duration_ms"); plan.totalDurationMs = try lexer.null() ? 0 : try int("total_duration_ms")
            case 8 where lexer.matches(k, "metadata"): try once(&seen, 1 << 11, "metadata"); plan.metadata = try map("metadata", depth: 1)
            case 15 where lexer.matches(k, "rollback_reason"):
                try once(&seen, 1 << 12, "rollback_reason"); plan.rollbackReason = try optionalString("rollback_reason")
            case 13 where lexer.matches(k, "cancel_reason"):
                try once(&seen, 1 << 13, "cancel_reason"); plan.cancelReason = try optionalString("cancel_reason")
            default: try lexer.skipValue(depth: 1, maxDepth: Self.maxDepth)
            }
        } while try lexer.more(0x7D)
        guard let id else { throw fail("id", "required") }
        guard let recommendationID else { throw fail("recommendation_id", "required") }
        guard let customerID else { throw fail("customer_id", "required") }
        guard let steps else { throw fail("steps", "required") }
        guard let status else { throw fail("status", "required") }
        guard let createdAt else { throw fail("created_at", "required") }
        (plan.id, plan.recommendationID, plan.customerID, plan.steps, plan.status, plan.createdAt)
            = (id, recommendationID, customerID, steps, status, createdAt)
        return plan
    }

    private mutating func stepList() throws(JSONLexer.Malformed) -> [ExecutionStep] {
        guard try lexer.peek() == 0x5B else { throw fail("steps", "expected an array") }
        try lexer.expect(0x5B)
        var steps: [ExecutionStep] = []
        if try lexer.peek() == 0x5D {
            _ = try lexer.more(0x5D)
            return steps
        }
        repeat { steps.append(try step(steps.count)) } while try lexer.more(0x5D)
        return steps
    }

    private mutating func step(_ index: Int) throws(JSONLexer.Malformed) -> ExecutionStep {
        func at() -> String { "steps[\(index)]" }
        guard try lexer.peek() == 0x7B else { throw fail(at(), "expected an object") }
        try lexer.expect(0x7B)
        var id: String?, action: String?, agentID: String?, critical: Bool?, reversible: Bool?, status: ExecutionStatus?
        var step = ExecutionStep(id: "", action: "", agentID: "")
        var seen: UInt32 = 0
        if try lexer.peek() == 0x7D { throw fail("\(at()).id", "required") }
        repeat {
            let k = try lexer.plainKey()
            let base = lexer.base
            func path() -> String { "\(at()).\(String(decoding: UnsafeBufferPointer(start: base + k.start, count: k.count), as: UTF8.self))" }
            switch k.count {
            case 2 where lexer.matches(k, "id"): try once(&seen, 1 << 0, path()); id = try string(path())
            case 6 where lexer.matches(k, "action"): try once(&seen, 1 << 1, path()); action = try string(path())
            case 8 where lexer.matches(k, "agent_id"): try once(&seen, 1 << 2, path()); agentID = try string(path())
            case 10 where lexer.matches(k, "parameters"): try once(&seen, 1 << 3, path()); step.parameters = try map(path(), depth: 3) ?? [:]
            case 8 where lexer.matches(k, "critical"): try once(&seen, 1 << 4, path()); critical = try bool(path())
            case 10 where lexer.matches(k, "reversible"): try once(&seen, 1 << 5, path()); reversible = try bool(path())
            case 6 where lexer.matches(k, "status"): try once(&seen, 1 << 6, path()); status = try self.status(path())
            case 6 where lexer.matches(k, "result"): try once(&seen, 1 << 7, path()); step.result = try map(path(), depth: 3)
            case 5 where lexer.matches(k, "error"): try once(&seen, 1 << 8, path()); step.error = try optionalString(path())
            case 10 where lexer.matches(k, "started_at"): try once(&seen, 1 << 9, path()); step.startedAt = try optionalDate(path())
            case 12 where lexer.matches(k, "completed_at"): try once(&seen, 1 << 10, path()); step.completedAt = try optionalDate(path())
            case 11 where lexer.matches(k, "duration_ms"): try once(&seen, 1 << 11, path()); step.durationMs = try lexer.null() ? 0 : try int(path())
            case 13 where lexer.matches(k, "rollback_data"): try once(&seen, 1 << 12, path()); step.rollbackData = try map(path(), depth: 3)
            case 14 where lexer.matches(k, "rollback_error"): try once(&seen, 1 << 13, path()); step.rollbackError = try optionalString(path())
            default: try lexer.skipValue(depth: 3, maxDepth: Self.maxDepth)
            }
        } while try lexer.more(0x7D)
        guard let id else { throw fail("\(at()).id", "required") }
        guard let action else { throw fail("\(at()).action", "required") }
        guard let agentID else { throw fail("\(at()).agent_id", "required") }
        guard let critical else { throw fail("\(at()).critical", "required") }
        guard let reversible else { throw fail("\(at()).reversible", "required") }
        guard let status else { throw fail("\(at()).status", "required") }
        (step.id, step.action, step.agentID, step.critical, step.reversible, step.status) = (id, action, agentID, critical, reversible, status)
        return step
    }
}
