import Foundation

/// Reads JSON tokens (RFC 8259) from bytes, one at a time, for the parsers that read a message
/// without building its whole tree: `TopLevelJSON` (every message's envelope) and the fast
/// `coordinate` parser. Errors name what was wrong and the byte offset.
///
/// `strict` lexers refuse strings that are not valid UTF-8 or hold a lone surrogate escape, as
/// `JSONDecoder` does; lenient ones decode them with U+FFFD in place (an envelope's `request_id`
/// is still echoed when a later field is refused).
public struct JSONLexer {
    /// A syntax error: what was expected, and where (`at byte N`).
    public struct Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        /// What was wrong, with the byte offset.
        public var message: String
        /// A malformed-input error with this message.
        public init(message: String) { self.message = message }
        /// The message.
        public var description: String { message }
    }

    let base: UnsafePointer<UInt8>
    let end: Int
    private let strict: Bool
    /// The offset of the next byte to read.
    public internal(set) var at = 0
    private var scratch: [UInt8] = []

    /// A lexer over `buffer`, which must outlive it.
    public init(_ buffer: UnsafeBufferPointer<UInt8>, strict: Bool = true) {
        // An empty buffer may have no address; nothing is read from it then (`end` is 0).
        base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
        end = buffer.count
        self.strict = strict
    }

    /// Whether every byte was read.
    public var atEnd: Bool { at >= end }

    /// The next byte, without skipping whitespace; nil at the end.
    public var next: UInt8? { at < end ? base[at] : nil }

    /// The input bytes `start..<start + count` (a token's range) as text.
    public func text(start: Int, count: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: base + start, count: count), as: UTF8.self)
    }

    /// An error at the current offset.
    public func fail(_ what: String) -> Malformed { Malformed(message: "\(what) at byte \(at)") }

    /// Skips JSON whitespace.
    @inline(__always) public mutating func skipSpace() {
        while at < end {
            let c = base[at]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            at += 1
        }
    }

    /// The next byte after whitespace (not consumed).
    @inline(__always) public mutating func peek() throws(Malformed) -> UInt8 {
        skipSpace()
        guard at < end else { throw fail("unexpected end of input, expected a value") }
        return base[at]
    }

    /// Consumes `c` after whitespace.
    @inline(__always) public mutating func expect(_ c: UInt8) throws(Malformed) {
        skipSpace()
        guard at < end, base[at] == c else {
            let what = "'\(Character(UnicodeScalar(c)))'"
            throw fail(at >= end ? "unexpected end of input, expected \(what)" : "expected \(what)")
        }
        at += 1
    }

    /// After a value in an object or array: true for `,`, false for the closing bracket.
    @inline(__always) public mutating func more(_ close: UInt8) throws(Malformed) -> Bool {
        skipSpace()
        let container = close == 0x7D ? "an object" : "an array"
        guard at < end else { throw fail("unexpected end of input in \(container)") }
        let c = base[at]
        if c == 0x2C { at += 1; return true }
        if c == close { at += 1; return false }
        throw fail("expected ',' or '\(Character(UnicodeScalar(close)))'")
    }

    /// Consumes `text` (`true`, `false`, `null`).
    public mutating func literal(_ text: StaticString) throws(Malformed) {
        let count = text.utf8CodeUnitCount
        guard at + count <= end else { throw fail("unexpected end of input") }
        guard memcmp(base + at, text.utf8Start, count) == 0 else { throw fail("invalid literal") }
        at += count
    }

    /// `null` (consumed) or not.
    @inline(__always) public mutating func null() throws(Malformed) -> Bool {
        guard try peek() == 0x6E else { return false }
        try literal("null")
        return true
    }

    /// `true` or `false`.
    public mutating func bool() throws(Malformed) -> Bool {
        switch try peek() {
        case 0x74: try literal("true"); return true
        case 0x66: try literal("false"); return false
        default: throw fail("expected a boolean")
        }
    }

    // MARK: Strings

    /// A member name in plain ASCII without escapes, with its colon, as a range of the input
    /// (nil-free fast path of the `coordinate` parser; anything else is an error).
    mutating func plainKey() throws(Malformed) -> (start: Int, count: Int) {
        try expect(0x22)
        let start = at
        while at < end {
            let c = base[at]
            if c == 0x22 {
                let range = (start, at - start)
                at += 1
                try expect(0x3A)
                return range
            }
            guard c >= 0x20, c != 0x5C, c < 0x80 else { throw fail("member name not plain ASCII") }
            at += 1
        }
        throw fail("unterminated string")
    }

    /// Whether the bytes `range` are `name`.
    @inline(__always) func matches(_ range: (start: Int, count: Int), _ name: StaticString) -> Bool {
        range.count == name.utf8CodeUnitCount && memcmp(base + range.start, name.utf8Start, range.count) == 0
    }

    /// A string value.
    public mutating func string() throws(Malformed) -> String {
        try expect(0x22)
        let start = at
        var ascii = true
        while at < end {
            let c = base[at]
            if c == 0x22 {
                let slice = UnsafeBufferPointer(start: base + start, count: at - start)
                at += 1
                if ascii || !strict { return String(decoding: slice, as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
                return text
            }
            if c == 0x5C { return try escapedString(from: start) }
            guard c >= 0x20 else { throw fail("control character in a string") }
            if c >= 0x80 { ascii = false }
            at += 1
        }
        throw fail("unterminated string")
    }

    /// The rest of a string with escapes, from its first byte at `start`.
    private mutating func escapedString(from start: Int) throws(Malformed) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: base + start, count: at - start))
        var pendingHigh: UInt32?
        func appendScalar(_ value: UInt32) {
            scratch.append(contentsOf: UTF8.encode(Unicode.Scalar(value) ?? "\u{FFFD}")!)
        }
        while at < end {
            let c = base[at]
            at += 1
            if c == 0x22 {
                if pendingHigh != nil {
                    if strict { throw fail("lone surrogate in a string") }
                    appendScalar(0xFFFD)
                }
                if !strict { return String(decoding: scratch, as: UTF8.self) }
                guard let text = String(validating: scratch, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
                return text
            }
            guard c >= 0x20 else { at -= 1; throw fail("control character in a string") }
            guard c == 0x5C else {
                if pendingHigh != nil {
                    if strict { throw fail("lone surrogate in a string") }
                    appendScalar(0xFFFD)
                    pendingHigh = nil
                }
                scratch.append(c)
                continue
            }
            guard at < end else { throw fail("unterminated string") }
            let e = base[at]
            at += 1
            if e == 0x75 {
                let code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    if strict && pendingHigh != nil { throw fail("lone surrogate in a string") }
                    if pendingHigh != nil { appendScalar(0xFFFD) }
                    pendingHigh = code
                } else if (0xDC00..<0xE000).contains(code), let high = pendingHigh {
                    appendScalar(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                    pendingHigh = nil
                } else {
                    if pendingHigh != nil || (0xDC00..<0xE000).contains(code) {
                        if strict { throw fail("lone surrogate in a string") }
                        if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
                    }
                    appendScalar(code)
                }
                continue
            }
            if pendingHigh != nil {
                if strict { throw fail("lone surrogate in a string") }
                appendScalar(0xFFFD)
                pendingHigh = nil
            }
            switch e {
            case 0x22, 0x5C, 0x2F: scratch.append(e)
            case 0x62: scratch.append(0x08)
            case 0x66: scratch.append(0x0C)
            case 0x6E: scratch.append(0x0A)
            case 0x72: scratch.append(0x0D)
            case 0x74: scratch.append(0x09)
            default: at -= 1; throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws(Malformed) -> UInt32 {
        guard at + 4 <= end else { throw fail("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = base[at]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x41...0x46: digit = c - 0x37
            case 0x61...0x66: digit = c - 0x57
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            at += 1
        }
        return value
    }

    // MARK: Whole values

    /// Checks one value and moves past it without building it. Containers nest at most
    /// `maxDepth` deep counting from `depth` (the input is hostile: recursion must be bounded).
    public mutating func skipValue(depth: Int = 0, maxDepth: Int) throws(Malformed) {
        guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth)") }
        switch try peek() {
        case 0x7B:
            at += 1
            skipSpace()
            if next == 0x7D { at += 1; return }
            repeat {
                skipSpace()
                guard next == 0x22 else { throw fail("expected a member name") }
                try skipString()
                try expect(0x3A)
                try skipValue(depth: depth + 1, maxDepth: maxDepth)
            } while try more(0x7D)
        case 0x5B:
            at += 1
            skipSpace()
            if next == 0x5D { at += 1; return }
            repeat { try skipValue(depth: depth + 1, maxDepth: maxDepth) } while try more(0x5D)
        case 0x22: try skipString()
        case 0x74: try literal("true")
        case 0x66: try literal("false")
        case 0x6E: try literal("null")
        default: _ = try numberToken()
        }
    }

    /// Checks a string and moves past it (strict lexers decode it, to check its UTF-8).
    public mutating func skipString() throws(Malformed) {
        if strict {
            _ = try string()
            return
        }
        try expect(0x22)
        while at < end {
            let c = base[at]
            if c == 0x22 { at += 1; return }
            guard c >= 0x20 else { throw fail("control character in a string") }
            at += 1
            guard c == 0x5C else { continue }
            guard at < end else { break }
            switch base[at] {
            case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: at += 1
            case 0x75: at += 1; _ = try hex4()
            default: throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    /// A member name of any spelling (escapes, any UTF-8), with its colon.
    public mutating func memberName() throws(Malformed) -> String {
        skipSpace()
        guard next == 0x22 else { throw fail(atEnd ? "unexpected end of input, expected a member name" : "expected a member name") }
        let name = try string()
        try expect(0x3A)
        return name
    }

    /// Any JSON value, built, with containers at most `maxDepth` deep counting from `depth`.
    /// Member names are plain ASCII without escapes unless `anyNames` (then any string).
    public mutating func value(depth: Int = 0, maxDepth: Int, anyNames: Bool = false) throws(Malformed) -> JSONValue {
        switch try peek() {
        case 0x22: return .string(try string())
        case 0x74, 0x66: return .bool(try bool())
        case 0x6E: try literal("null"); return .null
        case 0x5B:
            guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth)") }
            at += 1
            var items: [JSONValue] = []
            if try peek() == 0x5D {
                at += 1
            } else {
                repeat { items.append(try value(depth: depth + 1, maxDepth: maxDepth, anyNames: anyNames)) } while try more(0x5D)
            }
            return .array(items)
        case 0x7B: return .object(try object(depth: depth, maxDepth: maxDepth, anyNames: anyNames))
        default: return .number(try double())
        }
    }

    /// An object of any values, its member names plain ASCII without escapes (any string when
    /// `anyNames`); a name given twice is an error (decoders disagree on it).
    public mutating func object(depth: Int = 0, maxDepth: Int, anyNames: Bool = false) throws(Malformed) -> [String: JSONValue] {
        guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth)") }
        try expect(0x7B)
        var members: [String: JSONValue] = [:]
        if try peek() == 0x7D {
            at += 1
            return members
        }
        repeat {
            let name: String
            if anyNames {
                name = try memberName()
            } else {
                let key = try plainKey()
                name = String(decoding: UnsafeBufferPointer(start: base + key.start, count: key.count), as: UTF8.self)
            }
            guard members.updateValue(try value(depth: depth + 1, maxDepth: maxDepth, anyNames: anyNames), forKey: name) == nil else {
                throw fail("member \(WireLimits.quoted(name)) given twice")
            }
        } while try more(0x7D)
        return members
    }

    /// An array of strings.
    public mutating func strings() throws(Malformed) -> [String] {
        try expect(0x5B)
        var items: [String] = []
        if try peek() == 0x5D {
            at += 1
            return items
        }
        repeat { items.append(try string()) } while try more(0x5D)
        return items
    }
}

extension JSONLexer {
    /// Reads `bytes` as one JSON object and nothing after it: `member` gets each member's name
    /// with the lexer at its value, and reads the value (returning true) or leaves it to be
    /// skipped (false). False when the bytes are not such an object, or `member` threw.
    public static func readObject(_ bytes: [UInt8], _ member: (String, inout JSONLexer) throws(Malformed) -> Bool) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer)
            do throws(Malformed) {
                try lexer.expect(UInt8(ascii: "{"))
                if try lexer.peek() != UInt8(ascii: "}") {
                    repeat {
                        let name = try lexer.memberName()
                        if try !member(name, &lexer) { try lexer.skipValue(depth: 1, maxDepth: TopLevelJSON.maxDepth) }
                    } while try lexer.more(UInt8(ascii: "}"))
                } else {
                    _ = try lexer.more(UInt8(ascii: "}"))
                }
                lexer.skipSpace()
                return lexer.atEnd
            } catch {
                return false
            }
        }
    }
}
