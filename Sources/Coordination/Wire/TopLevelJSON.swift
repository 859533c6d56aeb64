/// Checks that a message is one well-formed JSON object and reads its top-level members,
/// without building the nested values: every request passes through here before anything else,
/// and `JSONSerialization` would build a whole object tree only to read a few strings from it.
public enum TopLevelJSON {
    /// A top-level member's value: strings and null as they are, anything else by its kind.
    public enum Value: Sendable, Equatable {
        /// A string, decoded (invalid UTF-8 and lone surrogates become U+FFFD).
        case string(String)
        /// `null`.
        case null
        /// Any other JSON value, named for error messages ("a number", "an object", ...).
        case other(String)
    }

    /// Why a message is not one well-formed JSON object.
    public typealias Malformed = JSONLexer.Malformed

    /// Containers nest at most this deep.
    public static let maxDepth = 512

    /// The top-level members of `bytes`, which must be exactly one JSON object (RFC 8259,
    /// whitespace around it allowed). A member given twice keeps its last value. `strict`
    /// refuses strings (nested ones too) with invalid UTF-8 or a lone surrogate escape, as
    /// `JSONSerialization` does; lenient reading decodes them with U+FFFD in place.
    public static func members(_ bytes: [UInt8], strict: Bool = false) -> Result<[String: Value], Malformed> {
        bytes.withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer, strict: strict)
            do throws(Malformed) {
                lexer.skipSpace()
                guard lexer.next == UInt8(ascii: "{") else {
                    throw Malformed(message: lexer.atEnd ? "empty message" : "message must be a JSON object")
                }
                let members = try topObject(&lexer)
                lexer.skipSpace()
                guard lexer.atEnd else { throw Malformed(message: "unexpected data after the JSON object at byte \(lexer.at)") }
                return .success(members)
            } catch {
                return .failure(error)
            }
        }
    }

    /// The top-level members that stand whole in `head`, the first bytes of a message too long
    /// to read: a bounded scan for what routes an answer (`reply_to`, `request_id`), never a
    /// parse of the whole. Empty when `head` does not start as a JSON object.
    public static func leadingMembers(_ head: [UInt8]) -> [String: Value] {
        head.withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer, strict: false)
            var members: [String: Value] = [:]
            lexer.skipSpace()
            guard lexer.next == UInt8(ascii: "{") else { return members }
            // Whatever stands whole before the cut (or before anything malformed).
            _ = try? topObject(&lexer, into: &members)
            return members
        }
    }

    private static func topObject(_ lexer: inout JSONLexer) throws(Malformed) -> [String: Value] {
        var members: [String: Value] = [:]
        try topObject(&lexer, into: &members)
        return members
    }

    private static func topObject(_ lexer: inout JSONLexer, into members: inout [String: Value]) throws(Malformed) {
        try lexer.expect(UInt8(ascii: "{"))
        lexer.skipSpace()
        if lexer.next == UInt8(ascii: "}") {
            _ = try lexer.more(UInt8(ascii: "}"))
            return
        }
        repeat {
            lexer.skipSpace()
            guard lexer.next == UInt8(ascii: "\"") else { throw lexer.fail("expected a member name") }
            let name = try lexer.string()
            try lexer.expect(UInt8(ascii: ":"))
            switch try lexer.peek() {
            case UInt8(ascii: "\""): members[name] = .string(try lexer.string())
            case UInt8(ascii: "n"): try lexer.literal("null"); members[name] = .null
            case let c:
                try lexer.skipValue(depth: 1, maxDepth: maxDepth)
                switch c {
                case UInt8(ascii: "{"): members[name] = .other("an object")
                case UInt8(ascii: "["): members[name] = .other("an array")
                case UInt8(ascii: "t"), UInt8(ascii: "f"): members[name] = .other("a boolean")
                default: members[name] = .other("a number")
                }
            }
        } while try lexer.more(UInt8(ascii: "}"))
    }
}
