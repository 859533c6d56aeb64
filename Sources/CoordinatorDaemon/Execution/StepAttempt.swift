import Coordination
import Foundation

/// One dispatch of a step (or of its rollback) to an agent (PROTOCOL.md section 5). Its
/// token is fresh and unguessable: only a result that echoes it (and `rollback`) answers this
/// dispatch, so a late, duplicated or forged result changes nothing. Stored with the plan (in
/// the commit that pushes the step) so that a daemon reloading or taking the plan over knows
/// what is outstanding and can withdraw it from the agent's list.
struct StepAttempt: Equatable, Sendable {
    var index: Int
    var stepID: String
    var rollback: Bool
    var token: String
    /// The step's deadline, Unix milliseconds.
    var deadlineMs: Int
    /// The agent's step list and the exact message pushed there (LREM needs its bytes).
    var list: String
    var message: [UInt8]

    /// 128 random bits from the system's generator, as 32 hex digits.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(generator.next()) + hex(generator.next())
    }

    var deadline: Date { Date(timeIntervalSince1970: Double(deadlineMs) / 1000) }

    func encoded() -> [UInt8] {
        var w = JSONWriter(capacity: message.count + 256)
        w.beginObject()
        w.key("index"); w.int(index)
        w.key("step_id"); w.string(stepID)
        w.key("rollback"); w.bool(rollback)
        w.key("attempt"); w.string(token)
        w.key("deadline_ms"); w.int(deadlineMs)
        w.key("list"); w.string(list)
        w.key("message"); w.string(String(decoding: message, as: UTF8.self))
        w.endObject()
        return w.bytes
    }

    /// Read back what `encoded()` wrote, with `JSONLexer` (the plan's own record: members in
    /// any order, unknown ones skipped); nil for anything else.
    static func decode(_ bytes: [UInt8]) -> StepAttempt? {
        var index: Int?, stepID: String?, rollback: Bool?, token: String?, deadlineMs: Int?, list: String?, message: String?
        let read = JSONLexer.readObject(bytes) { name, lexer throws(JSONLexer.Malformed) in
            switch name {
            case "index": index = try lexer.int()
            case "step_id": stepID = try lexer.string()
            case "rollback": rollback = try lexer.bool()
            case "attempt": token = try lexer.string()
            case "deadline_ms": deadlineMs = try lexer.int()
            case "list": list = try lexer.string()
            case "message": message = try lexer.string()
            default: return false
            }
            return true
        }
        guard read, let index, let stepID, let rollback, let token, let deadlineMs, let list, let message else { return nil }
        return StepAttempt(index: index, stepID: stepID, rollback: rollback, token: token, deadlineMs: deadlineMs,
                           list: list, message: Array(message.utf8))
    }
}
