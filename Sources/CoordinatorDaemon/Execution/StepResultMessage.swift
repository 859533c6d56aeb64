import Coordination
import Foundation

/// A step result from `coord:steps:results` (PROTOCOL.md section 5):
/// `{"plan_id","step_id","attempt","rollback","ok": true,"result","rollback_data"}` or
/// `{…,"ok": false,"error"}`. `attempt` and `rollback` echo the dispatch it answers.
struct StepResultMessage {
    var planID: String
    var stepID: String
    var attempt: String
    var rollback: Bool
    var outcome: StepOutcome

    private struct Wire: Decodable {
        var plan_id: String?
        var step_id: String?
        var attempt: String?
        var rollback: Bool?
        var ok: Bool?
        var result: [String: JSONValue]?
        var rollback_data: [String: JSONValue]?
        var error: String?
    }

    /// The result, or why it cannot be one: `invalid_json` when it is not JSON (or not UTF-8),
    /// `invalid_request` when it is JSON of the wrong shape (the field named by its path).
    static func parse(_ raw: [UInt8]) -> Result<StepResultMessage, Refusal> {
        guard String(validating: raw, as: UTF8.self) != nil else {
            return .failure(Refusal(.invalidJSON, "step result is not valid UTF-8"))
        }
        guard let any = try? JSONSerialization.jsonObject(with: Data(raw), options: [.fragmentsAllowed]) else {
            return .failure(Refusal(.invalidJSON, "step result is not valid JSON"))
        }
        guard any is [String: Any] else { return .failure(Refusal(.invalidRequest, "step result must be a JSON object")) }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(raw))
        } catch let error as DecodingError {
            return .failure(Refusal(.invalidRequest, RequestDecoding.validationError(error).description))
        } catch {
            return .failure(Refusal(.invalidRequest, "step result: \(error)"))
        }
        func required(_ value: String?, _ path: String) -> Result<String, Refusal> {
            guard let value else { return .failure(Refusal(.invalidRequest, "\(path): required")) }
            if let problem = WireLimits.identifierProblem(value) { return .failure(Refusal(.invalidRequest, "\(path): \(problem)")) }
            return .success(value)
        }
        let planID: String, stepID: String, attempt: String
        switch required(wire.plan_id, "plan_id") { case .success(let v): planID = v; case .failure(let f): return .failure(f) }
        switch required(wire.step_id, "step_id") { case .success(let v): stepID = v; case .failure(let f): return .failure(f) }
        switch required(wire.attempt, "attempt") { case .success(let v): attempt = v; case .failure(let f): return .failure(f) }
        guard let rollback = wire.rollback else { return .failure(Refusal(.invalidRequest, "rollback: required (true or false, as dispatched)")) }
        guard let ok = wire.ok else { return .failure(Refusal(.invalidRequest, "ok: required (true or false)")) }
        let error = (wire.error ?? "agent reported failure").prefix(WireLimits.textMaxBytes)
        let outcome: StepOutcome = ok
            ? .success(result: wire.result ?? [:], rollbackData: wire.rollback_data ?? [:])
            : .failure(String(error))
        return .success(StepResultMessage(planID: planID, stepID: stepID, attempt: attempt, rollback: rollback, outcome: outcome))
    }
}
