import Coordination

/// A step result from `coord:steps:results` (PROTOCOL.md section 5):
/// `{"plan_id","step_id","attempt","rollback","ok": true,"result","rollback_data"}` or
/// `{…,"ok": false,"error"}`. `attempt` and `rollback` echo the dispatch it answers.
struct StepResultMessage {
    var planID: String
    var stepID: String
    var attempt: String
    var rollback: Bool
    var outcome: StepOutcome
    /// Set when the result broke a bound of section 5: over `--max-message-bytes`, or its
    /// `result` or `rollback_data` over 64 KiB as JSON. It is dead-lettered with this refusal,
    /// and `outcome` is the failure of its step with the same error, so the step fails at once
    /// instead of keeping megabytes in its plan and in the event stream.
    var refusal: Refusal?

    /// The result, or why it cannot be one: `invalid_json` when it is not JSON (or not UTF-8),
    /// `invalid_request` when it is JSON of the wrong shape (the field named by its path), both
    /// as `StepResultReader` words them.
    /// A result over `maxBytes` is not decoded: only its top-level identity (plan, step,
    /// attempt, direction) is read, by a scan that builds no nested value, so that its step can
    /// fail with `too_large`; without a readable identity it is refused outright.
    static func parse(_ raw: [UInt8], maxBytes: Int) -> Result<StepResultMessage, Refusal> {
        guard String(validating: raw, as: UTF8.self) != nil else {
            return .failure(Refusal(.invalidJSON, "step result is not valid UTF-8"))
        }
        if raw.count > maxBytes { return oversized(head: raw, bytes: raw.count, maxBytes: maxBytes) }
        let wire: StepResultReader.Fields
        switch StepResultReader.fields(raw) {
        case .success(let fields): wire = fields
        case .failure(let refusal): return .failure(refusal)
        }
        func required(_ value: String?, _ path: String) -> Result<String, Refusal> {
            guard let value else { return .failure(Refusal(.invalidRequest, "\(path): required")) }
            if let problem = WireLimits.identifierProblem(value) { return .failure(Refusal(.invalidRequest, "\(path): \(problem)")) }
            return .success(value)
        }
        let planID: String, stepID: String, attempt: String
        switch required(wire.planID, "plan_id") { case .success(let v): planID = v; case .failure(let f): return .failure(f) }
        switch required(wire.stepID, "step_id") { case .success(let v): stepID = v; case .failure(let f): return .failure(f) }
        switch required(wire.attempt, "attempt") { case .success(let v): attempt = v; case .failure(let f): return .failure(f) }
        guard let rollback = wire.rollback else { return .failure(Refusal(.invalidRequest, "rollback: required (true or false, as dispatched)")) }
        guard let ok = wire.ok else { return .failure(Refusal(.invalidRequest, "ok: required (true or false)")) }
        let error = (wire.error ?? "agent reported failure").prefix(WireLimits.textMaxBytes)
        if ok {
            // Bounded like `parameters` (section 5): both are kept in the plan and the event.
            do throws(ValidationError) {
                try WireLimits.checkMap(wire.result ?? [:], path: "result")
                try WireLimits.checkMap(wire.rollbackData ?? [:], path: "rollback_data")
            } catch {
                let refusal = Refusal(.tooLarge, error.description)
                return .success(StepResultMessage(planID: planID, stepID: stepID, attempt: attempt, rollback: rollback,
                                                  outcome: .failure("too_large: \(refusal.message)"), refusal: refusal))
            }
        }
        let outcome: StepOutcome = ok
            ? .success(result: wire.result ?? [:], rollbackData: wire.rollbackData ?? [:])
            : .failure(String(error))
        return .success(StepResultMessage(planID: planID, stepID: stepID, attempt: attempt, rollback: rollback, outcome: outcome))
    }

    /// A result of `bytes` bytes, over `maxBytes`, of which only `head` (its first bytes) was
    /// read: refused `too_large`, and when its identity stands whole in `head`, the failure of
    /// its step with that error (so the step fails at once). Without it, refused outright.
    static func oversized(head: [UInt8], bytes: Int, maxBytes: Int) -> Result<StepResultMessage, Refusal> {
        let refusal = Refusal(.tooLarge, "step result is \(bytes) bytes, over --max-message-bytes (\(maxBytes))")
        guard let identity = identity(of: head) else { return .failure(refusal) }
        return .success(StepResultMessage(planID: identity.planID, stepID: identity.stepID, attempt: identity.attempt,
                                          rollback: identity.rollback, outcome: .failure("too_large: \(refusal.message)"),
                                          refusal: refusal))
    }

    /// `plan_id`, `step_id`, `attempt` (identifiers) and `rollback` of a result, read from its
    /// top level without building any nested value or decoding any other string, as soon as
    /// all four have been read (the rest may be cut off: `raw` may be a message's first
    /// bytes); nil when they are not all there before the end or anything malformed.
    private static func identity(of raw: [UInt8]) -> (planID: String, stepID: String, attempt: String, rollback: Bool)? {
        raw.withUnsafeBufferPointer { buffer -> (planID: String, stepID: String, attempt: String, rollback: Bool)? in
            var lexer = JSONLexer(buffer, strict: false)
            var planID: String?, stepID: String?, attempt: String?, rollback: Bool?
            do throws(JSONLexer.Malformed) {
                try lexer.expect(UInt8(ascii: "{"))
                if try lexer.peek() == UInt8(ascii: "}") { return nil }
                repeat {
                    guard try lexer.peek() == UInt8(ascii: "\"") else { return nil }
                    let name = try lexer.string()
                    try lexer.expect(UInt8(ascii: ":"))
                    switch name {
                    case "plan_id", "step_id", "attempt":
                        guard try lexer.peek() == UInt8(ascii: "\"") else { return nil }
                        let value = try lexer.string()
                        guard WireLimits.identifierProblem(value) == nil else { return nil }
                        if name == "plan_id" { planID = value } else if name == "step_id" { stepID = value } else { attempt = value }
                    case "rollback":
                        rollback = try lexer.bool()
                    default:
                        try lexer.skipValue(maxDepth: TopLevelJSON.maxDepth)
                    }
                    if let planID, let stepID, let attempt, let rollback { return (planID, stepID, attempt, rollback) }
                } while try lexer.more(UInt8(ascii: "}"))
            } catch {
                return nil
            }
            guard let planID, let stepID, let attempt, let rollback else { return nil }
            return (planID, stepID, attempt, rollback)
        }
    }
}
