/// Text that came from a client, made safe to show a person (PROTOCOL.md section 8): control
/// characters (below U+0020, U+007F–U+009F) and the bidirectional overrides (U+202A–U+202E,
/// U+2066–U+2069) are written as `\u001b`. A message then cannot move a person's cursor, rewrite
/// their terminal, reorder what they read or forge a log line. This is the one escaping
/// function: the text log format and every `coordinatord` command that shows client text use it.
public enum DisplayText {
    /// Whether `scalar` is shown escaped.
    @inline(__always)
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// `text` with every unsafe scalar written `\uXXXX`.
    public static func escaped(_ text: String) -> String {
        // Most text needs nothing: return it as it is.
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                out.append(contentsOf: Self.code(scalar.value).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Bytes that may not be UTF-8 (a dead letter's `raw_base64`): valid UTF-8 shown as
    /// `escaped` shows it, every byte of an invalid sequence as `\xNN`.
    public static func escaped(bytes: [UInt8]) -> String {
        var out = ""
        var index = 0
        while index < bytes.count {
            let length = Self.sequenceLength(bytes[index])
            if length > 0, index + length <= bytes.count,
               let decoded = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                out += escaped(decoded)
                index += length
            } else {
                out += "\\x" + Self.hex(UInt32(bytes[index]), digits: 2)
                index += 1
            }
        }
        return out
    }

    private static func sequenceLength(_ lead: UInt8) -> Int {
        switch lead {
        case 0x00...0x7F: 1
        case 0xC2...0xDF: 2
        case 0xE0...0xEF: 3
        case 0xF0...0xF4: 4
        default: 0
        }
    }

    private static func code(_ value: UInt32) -> String { "\\u" + hex(value, digits: 4) }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
