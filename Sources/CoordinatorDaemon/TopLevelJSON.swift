/// Checks that a message is one well-formed JSON object and reads its top-level members,
/// without building the nested values: every request passes through here before anything else,
/// and `JSONSerialization` would build a whole object tree only to read a few strings from it.
enum TopLevelJSON {
    enum Value: Equatable {
        case string(String)
        case null
        /// Any other JSON value, named for error messages ("a number", "an object", ...).
        case other(String)
    }

    struct Malformed: Error {
        var message: String
    }

    static let maxDepth = 512

    static func members(_ bytes: [UInt8]) -> Result<[String: Value], Malformed> {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer)
            do {
                scanner.skipWhitespace()
                guard scanner.peek == UInt8(ascii: "{") else {
                    throw Malformed(message: scanner.atEnd ? "empty message" : "message must be a JSON object")
                }
                let members = try scanner.topObject()
                scanner.skipWhitespace()
                guard scanner.atEnd else { throw Malformed(message: "unexpected data after the JSON object at byte \(scanner.at)") }
                return .success(members)
            } catch let error as Malformed {
                return .failure(error)
            } catch {
                return .failure(Malformed(message: "\(error)"))
            }
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        var atEnd: Bool { at >= bytes.count }
        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipWhitespace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        func fail(_ what: String) -> Malformed {
            Malformed(message: "\(what) at byte \(at)")
        }

        mutating func expect(_ c: UInt8) throws(Malformed) {
            skipWhitespace()
            guard peek == c else { throw fail(atEnd ? "unexpected end of input, expected '\(Character(UnicodeScalar(c)))'" : "expected '\(Character(UnicodeScalar(c)))'") }
            at += 1
        }

        mutating func topObject() throws(Malformed) -> [String: Value] {
            var members: [String: Value] = [:]
            try expect(UInt8(ascii: "{"))
            skipWhitespace()
            if peek == UInt8(ascii: "}") { at += 1; return members }
            while true {
                skipWhitespace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                let name = try string(decode: true)!
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                switch peek {
                case UInt8(ascii: "\""): members[name] = .string(try string(decode: true)!)
                case UInt8(ascii: "n"): try literal("null"); members[name] = .null
                case UInt8(ascii: "{"): try value(depth: 1); members[name] = .other("an object")
                case UInt8(ascii: "["): try value(depth: 1); members[name] = .other("an array")
                case UInt8(ascii: "t"), UInt8(ascii: "f"): try value(depth: 1); members[name] = .other("a boolean")
                default: try value(depth: 1); members[name] = .other("a number")
                }
                skipWhitespace()
                guard let c = peek else { throw fail("unexpected end of input in an object") }
                at += 1
                if c == UInt8(ascii: "}") { return members }
                guard c == UInt8(ascii: ",") else { at -= 1; throw fail("expected ',' or '}'") }
            }
        }

        mutating func value(depth: Int) throws(Malformed) {
            guard depth < TopLevelJSON.maxDepth else { throw fail("nested deeper than \(TopLevelJSON.maxDepth)") }
            skipWhitespace()
            guard let c = peek else { throw fail("unexpected end of input, expected a value") }
            switch c {
            case UInt8(ascii: "{"):
                at += 1
                skipWhitespace()
                if peek == UInt8(ascii: "}") { at += 1; return }
                while true {
                    skipWhitespace()
                    guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    _ = try string(decode: false)
                    try expect(UInt8(ascii: ":"))
                    try value(depth: depth + 1)
                    skipWhitespace()
                    guard let next = peek else { throw fail("unexpected end of input in an object") }
                    at += 1
                    if next == UInt8(ascii: "}") { return }
                    guard next == UInt8(ascii: ",") else { at -= 1; throw fail("expected ',' or '}'") }
                }
            case UInt8(ascii: "["):
                at += 1
                skipWhitespace()
                if peek == UInt8(ascii: "]") { at += 1; return }
                while true {
                    try value(depth: depth + 1)
                    skipWhitespace()
                    guard let next = peek else { throw fail("unexpected end of input in an array") }
                    at += 1
                    if next == UInt8(ascii: "]") { return }
                    guard next == UInt8(ascii: ",") else { at -= 1; throw fail("expected ',' or ']'") }
                }
            case UInt8(ascii: "\""): _ = try string(decode: false)
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func literal(_ word: StaticString) throws(Malformed) {
            let count = word.utf8CodeUnitCount
            guard at + count <= bytes.count else { throw fail("unexpected end of input") }
            for i in 0..<count where bytes[at + i] != word.utf8Start[i] { throw fail("invalid literal") }
            at += count
        }

        mutating func number() throws(Malformed) {
            func digits() -> Int {
                let start = at
                while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 { at += 1 }
                return at - start
            }
            if peek == UInt8(ascii: "-") { at += 1 }
            guard let first = peek, first >= 0x30, first <= 0x39 else { throw fail("invalid value") }
            if first == 0x30 { at += 1 } else { _ = digits() }
            if peek == UInt8(ascii: ".") {
                at += 1
                guard digits() > 0 else { throw fail("invalid number") }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                at += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw fail("invalid number") }
            }
        }

        /// A string at `at` (on its opening quote); its value when `decode`.
        mutating func string(decode: Bool) throws(Malformed) -> String? {
            at += 1
            let start = at
            var escaped = false
            while true {
                guard at < bytes.count else { throw fail("unterminated string") }
                let c = bytes[at]
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw fail("control character in a string") }
                if c == UInt8(ascii: "\\") {
                    escaped = true
                    at += 1
                    guard at < bytes.count else { throw fail("unterminated string") }
                    switch bytes[at] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        break
                    case UInt8(ascii: "u"):
                        guard at + 4 < bytes.count, (1...4).allSatisfy({ Self.hex(bytes[at + $0]) != nil }) else {
                            throw fail("invalid \\u escape")
                        }
                        at += 4
                    default:
                        throw fail("invalid escape")
                    }
                }
                at += 1
            }
            let end = at
            at += 1
            guard decode else { return nil }
            let raw = UnsafeBufferPointer(rebasing: bytes[start..<end])
            if !escaped { return String(decoding: raw, as: UTF8.self) }
            return Self.unescape(raw)
        }

        static func hex(_ c: UInt8) -> UInt32? {
            switch c {
            case 0x30...0x39: UInt32(c - 0x30)
            case 0x41...0x46: UInt32(c - 0x41 + 10)
            case 0x61...0x66: UInt32(c - 0x61 + 10)
            default: nil
            }
        }

        /// Decodes the escapes of a string already checked to be well formed.
        static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(raw.count)
            var i = 0
            var pendingHigh: UInt32?
            func appendScalar(_ value: UInt32) {
                let scalar = UnicodeScalar(value) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            while i < raw.count {
                let c = raw[i]
                guard c == UInt8(ascii: "\\") else {
                    if let high = pendingHigh { appendScalar(high); pendingHigh = nil }
                    out.append(c)
                    i += 1
                    continue
                }
                let e = raw[i + 1]
                i += 2
                if e == UInt8(ascii: "u") {
                    let code = (0..<4).reduce(UInt32(0)) { $0 << 4 | hex(raw[i + $1])! }
                    i += 4
                    if (0xD800...0xDBFF).contains(code) {
                        if let high = pendingHigh { appendScalar(high) }
                        pendingHigh = code
                    } else if (0xDC00...0xDFFF).contains(code), let high = pendingHigh {
                        appendScalar(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                        pendingHigh = nil
                    } else {
                        if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
                        appendScalar(code)
                    }
                    continue
                }
                if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
                switch e {
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                default: out.append(e)
                }
            }
            if pendingHigh != nil { appendScalar(0xFFFD) }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
