import Coordination
/// base64url without padding (RFC 4648 section 5, as RFC 7515 uses it). Every signed message
/// passes through `decode` twice (header and payload), so it works on bytes with a table
/// instead of Foundation's string-based base64 (which also wants the other alphabet and padding).
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0...63 for the alphabet's characters, 0xFF for anything else (`=` and `+`/`/` included).
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in alphabet.enumerated() { table[Int(character)] = UInt8(value) }
        return table
    }()

    /// The encoding of `bytes`, without padding.
    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        String(decoding: encodedBytes(bytes), as: UTF8.self)
    }

    /// The encoding of `bytes` as ASCII bytes, without padding.
    public static func encodedBytes<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= input.count {
            let n = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            index += 3
        }
        switch input.count - index {
        case 1:
            let n = UInt32(input[index]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        case 2:
            let n = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        default:
            break
        }
        return out
    }

    /// The bytes `text` encodes, or nil when it is not base64url without padding: a character
    /// outside the alphabet (padding included), a length that leaves one character over, or
    /// unused low bits that are not zero (so every byte string has exactly one encoding).
    public static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let remainder = text.count % 4
        if remainder == 1 { return nil }
        let full = text.count - remainder
        let count = full / 4 * 3 + max(0, remainder - 1)
        var valid = true
        // Written in place: a payload is decoded on every message, and appending byte by byte
        // cost as much as the signature check itself for large ones.
        let out = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            values.withUnsafeBufferPointer { table in
                text.withUnsafeBufferPointer { input in
                    var index = 0, at = 0
                    var bad: UInt8 = 0
                    while index < full {
                        let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                        let c = table[Int(input[index + 2])], d = table[Int(input[index + 3])]
                        bad |= a | b | c | d
                        buffer[at] = a << 2 | b >> 4
                        buffer[at + 1] = b << 4 | c >> 2
                        buffer[at + 2] = c << 6 | d
                        index += 4
                        at += 3
                    }
                    switch remainder {
                    case 2:
                        let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                        bad |= a | b | (b & 0x0F == 0 ? 0 : 0xFF)
                        buffer[at] = a << 2 | b >> 4
                    case 3:
                        let a = table[Int(input[index])], b = table[Int(input[index + 1])], c = table[Int(input[index + 2])]
                        bad |= a | b | c | (c & 0x03 == 0 ? 0 : 0xFF)
                        buffer[at] = a << 2 | b >> 4
                        buffer[at + 1] = b << 4 | c >> 2
                    default:
                        break
                    }
                    // Any character outside the alphabet maps to 0xFF, so one test at the end.
                    valid = bad & 0xC0 == 0
                }
            }
            initialized = count
        }
        return valid ? out : nil
    }

    /// The bytes `text` encodes, or nil (see `decode(_:)` on bytes).
    public static func decode(_ text: String) -> [UInt8]? {
        decode(Array(text.utf8)[...])
    }
}
