import Coordination

/// The members of a step result, read with `JSONLexer` (the reader of every queued message):
/// strict (invalid UTF-8 and lone surrogates are refused), nested at most
/// `TopLevelJSON.maxDepth` deep, member names given once. Errors say what a person can fix:
/// `invalid_json` with what and where (`expected ',' or '}' at byte 41`) when the message is
/// not one JSON value, `invalid_request` naming the member when it is JSON of the wrong shape.
struct StepResultReader {
    /// The members as sent; nil when absent or `null`.
    struct Fields {
        var planID: String?
        var stepID: String?
        var attempt: String?
        var rollback: Bool?
        var ok: Bool?
        var result: [String: JSONValue]?
        var rollbackData: [String: JSONValue]?
        var error: String?
    }

    /// The members of a result, in the order their type errors are named (as `JSONDecoder`
    /// named them: the first in this order wins), with the type each must have.
    private static let members: [(name: String, kind: Kind)] = [
        ("plan_id", .string), ("step_id", .string), ("attempt", .string), ("rollback", .bool), ("ok", .bool),
        ("result", .object), ("rollback_data", .object), ("error", .string),
    ]

    private enum Kind {
        case string, bool, object

        var expected: String {
            switch self {
            case .string: "expected a string"
            case .bool: "expected true or false"
            case .object: "expected an object"
            }
        }
    }

    /// The fields of `raw`, or the refusal saying why there are none.
    static func fields(_ raw: [UInt8]) -> Result<Fields, Refusal> {
        raw.withUnsafeBufferPointer { buffer -> Result<Fields, Refusal> in
            var reader = StepResultReader(lexer: JSONLexer(buffer, strict: true))
            do throws(JSONLexer.Malformed) {
                reader.lexer.skipSpace()
                guard reader.lexer.next == UInt8(ascii: "{") else { return .failure(notAnObject(buffer)) }
                try reader.object()
                reader.lexer.skipSpace()
                guard reader.lexer.atEnd else { throw reader.lexer.fail("unexpected data after the JSON object") }
            } catch {
                return .failure(classify(error, in: buffer, member: reader.reading))
            }
            if let problem = reader.problem() { return .failure(Refusal(.invalidRequest, problem)) }
            return .success(reader.fields)
        }
    }

    private var lexer: JSONLexer
    private var fields = Fields()
    /// A member of the wrong type, by its index in `members`.
    private var mismatched: Int?
    /// The first member name given twice.
    private var duplicate: String?
    /// The member whose value is being read (for an error inside `result`).
    private var reading: String?

    private init(lexer: JSONLexer) { self.lexer = lexer }

    private mutating func object() throws(JSONLexer.Malformed) {
        try lexer.expect(UInt8(ascii: "{"))
        if try lexer.peek() == UInt8(ascii: "}") {
            _ = try lexer.more(UInt8(ascii: "}"))
            return
        }
        var seen = Set<String>()
        repeat {
            let name = try lexer.memberName()
            if !seen.insert(name).inserted, duplicate == nil { duplicate = name }
            guard let index = Self.members.firstIndex(where: { $0.name == name }) else {
                try lexer.skipValue(depth: 1, maxDepth: TopLevelJSON.maxDepth)
                continue
            }
            reading = name
            try member(index)
            reading = nil
        } while try lexer.more(UInt8(ascii: "}"))
    }

    /// The value of `members[index]`: `null` is absent; another type is noted and skipped.
    private mutating func member(_ index: Int) throws(JSONLexer.Malformed) {
        if try lexer.null() { return }
        let c = try lexer.peek()
        switch Self.members[index].kind {
        case .string where c == UInt8(ascii: "\""):
            let value = try lexer.string()
            switch index {
            case 0: fields.planID = value
            case 1: fields.stepID = value
            case 2: fields.attempt = value
            default: fields.error = value
            }
        case .bool where c == UInt8(ascii: "t") || c == UInt8(ascii: "f"):
            if index == 3 { fields.rollback = try lexer.bool() } else { fields.ok = try lexer.bool() }
        case .object where c == UInt8(ascii: "{"):
            let value = try lexer.object(depth: 1, maxDepth: TopLevelJSON.maxDepth, anyNames: true)
            if index == 5 { fields.result = value } else { fields.rollbackData = value }
        default:
            mismatched = min(mismatched ?? index, index)
            try lexer.skipValue(depth: 1, maxDepth: TopLevelJSON.maxDepth)
        }
    }

    /// What is wrong with the shape of a well-formed result: a member of the wrong type, else
    /// a member given twice.
    private func problem() -> String? {
        if let mismatched { return "\(Self.members[mismatched].name): \(Self.members[mismatched].kind.expected)" }
        if let duplicate { return "\(WireLimits.cut(duplicate, at: WireLimits.quotedMaxBytes)): given twice" }
        return nil
    }

    /// A message that does not start with `{`: `invalid_request` when it is some other JSON
    /// value, `invalid_json` when it is none.
    private static func notAnObject(_ buffer: UnsafeBufferPointer<UInt8>) -> Refusal {
        var lexer = JSONLexer(buffer, strict: true)
        do throws(JSONLexer.Malformed) {
            lexer.skipSpace()
            guard !lexer.atEnd else { throw JSONLexer.Malformed(message: "empty message") }
            try lexer.skipValue(maxDepth: TopLevelJSON.maxDepth)
            lexer.skipSpace()
            guard lexer.atEnd else { throw lexer.fail("unexpected data after the JSON value") }
        } catch {
            return Refusal(.invalidJSON, "step result is not valid JSON: \(error.message)")
        }
        return Refusal(.invalidRequest, "step result must be a JSON object")
    }

    /// An error met while reading: `invalid_json` when the message is not one JSON value (a
    /// second pass that builds nothing says where), else `invalid_request` naming the member
    /// in whose value it was met (a number out of range, a nested member name given twice).
    private static func classify(_ error: JSONLexer.Malformed, in buffer: UnsafeBufferPointer<UInt8>, member: String?) -> Refusal {
        var lexer = JSONLexer(buffer, strict: true)
        do throws(JSONLexer.Malformed) {
            try lexer.skipValue(maxDepth: TopLevelJSON.maxDepth)
            lexer.skipSpace()
            guard lexer.atEnd else { throw lexer.fail("unexpected data after the JSON object") }
        } catch {
            return Refusal(.invalidJSON, "step result is not valid JSON: \(error.message)")
        }
        return Refusal(.invalidRequest, member.map { "\($0): \(error.message)" } ?? "step result: \(error.message)")
    }
}
