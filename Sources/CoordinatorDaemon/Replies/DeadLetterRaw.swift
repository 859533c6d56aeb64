/// How a dead letter carries its raw message (PROTOCOL.md section 6): as a string when it is
/// UTF-8, as base64 otherwise, and as base64 too when escaping would grow it past what base64
/// of `--dead-letter-raw-max` bytes takes (control bytes escape to six bytes each), so that a
/// dead letter stays within 4/3 of `--dead-letter-raw-max` plus its few other fields.
enum DeadLetterRaw: Equatable {
    case text(String)
    case base64([UInt8])

    static func form(of kept: [UInt8], truncated: Bool, rawMax: Int) -> DeadLetterRaw {
        var bytes = kept
        if truncated {
            // A cut may split a character: leave out its first bytes (at most 3).
            var end = bytes.count
            while end > 0, bytes.count - end < 3, String(validating: bytes[..<end], as: UTF8.self) == nil { end -= 1 }
            bytes.removeSubrange(end...)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .base64(kept) }
        if escapedSize(bytes) > (rawMax + 2) / 3 * 4 { return .base64(kept) }
        return .text(text)
    }

    /// The bytes `bytes` take as the inside of a JSON string.
    static func escapedSize(_ bytes: [UInt8]) -> Int {
        var size = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), 0x08, 0x0C, 0x0A, 0x0D, 0x09: size += 2
            case 0..<0x20: size += 6
            default: size += 1
            }
        }
        return size
    }
}
