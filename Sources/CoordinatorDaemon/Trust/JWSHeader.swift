import Coordination

/// A JWS protected header as this daemon reads it (`JWS.parse`): `alg`, `kid`, `iat`, and
/// whether `crit` is there. Read with `JSONLexer` like every other message, strict, bounded in
/// size and depth, each member name at most once: RFC 7515 (5.2) lets a parser refuse
/// duplicates, and taking one of two `kid`s would let two readers of the same message disagree
/// on who signed it. Other members are skipped (4.1: unknown header parameters are ignored
/// unless `crit` names them, and any `crit` is refused).
struct JWSHeader {
    /// A decoded header over this many bytes is refused (the daemon's own is about 60).
    static let maxBytes = 4096
    /// Containers in a header nest at most this deep (a `jwk` member is 2).
    static let maxDepth = 16

    /// A member this daemon reads, as sent.
    enum Value: Equatable {
        case string(String)
        /// A number: its token, exactly as written.
        case number(String)
        case null
        /// Anything else, named for errors ("an object", ...).
        case other(String)
    }

    var alg: Value?
    var kid: Value?
    var iat: Value?
    var crit: Value?

    /// The header in `bytes` (base64url-decoded), or what is wrong with it, worded for
    /// `JWS.Malformed.badHeader`.
    static func read(_ bytes: [UInt8]) -> Result<JWSHeader, JSONLexer.Malformed> {
        guard bytes.count <= maxBytes else {
            return .failure(JSONLexer.Malformed(message: "\(bytes.count) bytes, at most \(maxBytes)"))
        }
        return bytes.withUnsafeBufferPointer { buffer in
            var reading = JSONHeaderReading(lexer: JSONLexer(buffer, strict: true))
            do throws(JSONLexer.Malformed) {
                try reading.object()
                return .success(reading.header)
            } catch {
                return .failure(error)
            }
        }
    }
}

/// `JWSHeader.read`'s pass over the bytes.
private struct JSONHeaderReading {
    var lexer: JSONLexer
    var header = JWSHeader()

    mutating func object() throws(JSONLexer.Malformed) {
        lexer.skipSpace()
        guard lexer.next == UInt8(ascii: "{") else {
            throw JSONLexer.Malformed(message: lexer.atEnd ? "empty" : "must be a JSON object")
        }
        try lexer.expect(UInt8(ascii: "{"))
        if try lexer.peek() == UInt8(ascii: "}") {
            _ = try lexer.more(UInt8(ascii: "}"))
        } else {
            var seen = Set<String>()
            repeat {
                let at = lexer.at
                let name = try lexer.memberName()
                guard seen.insert(name).inserted else {
                    throw JSONLexer.Malformed(message: "member \(WireLimits.quoted(name)) given twice at byte \(at)")
                }
                switch name {
                case "alg": header.alg = try value()
                case "kid": header.kid = try value()
                case "iat": header.iat = try value()
                case "crit": header.crit = try value()
                default: try lexer.skipValue(depth: 1, maxDepth: JWSHeader.maxDepth)
                }
            } while try lexer.more(UInt8(ascii: "}"))
        }
        lexer.skipSpace()
        guard lexer.atEnd else { throw lexer.fail("unexpected data after the JSON object") }
    }

    /// A member's value: strings and numbers as written, anything else checked and named.
    private mutating func value() throws(JSONLexer.Malformed) -> JWSHeader.Value {
        switch try lexer.peek() {
        case UInt8(ascii: "\""):
            return .string(try lexer.string())
        case UInt8(ascii: "n"):
            try lexer.literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let token = try lexer.numberToken()
            return .number(lexer.text(start: token.start, count: token.count))
        case let c:
            try lexer.skipValue(depth: 1, maxDepth: JWSHeader.maxDepth)
            switch c {
            case UInt8(ascii: "{"): return .other("an object")
            case UInt8(ascii: "["): return .other("an array")
            default: return .other("a boolean")
            }
        }
    }
}
