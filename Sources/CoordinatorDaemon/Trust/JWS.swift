import Coordination
import Crypto
import Foundation

/// JSON Web Signatures in compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037):
/// `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)`, the signature covering
/// the ASCII of the first two parts joined by the dot. This is the form of every message on the
/// daemon's queues under `--trust` (PROTOCOL.md section 10).
public enum JWS {
    /// Signs `payload` (the message's JSON exactly as it would be sent unsigned) as `kid`, with
    /// the header `{"alg":"EdDSA","kid":"<kid>","iat":<seconds>}` (the signing time, which a
    /// daemon checks against `--signature-max-age`); returns the compact serialization.
    public static func sign(payload: [UInt8], kid: String, privateKey: Curve25519.Signing.PrivateKey,
                            issuedAt: Date = Date()) throws -> [UInt8] {
        var header = JSONWriter(capacity: 48 + kid.utf8.count)
        header.beginObject()
        header.key("alg"); header.string("EdDSA")
        header.key("kid"); header.string(kid)
        header.key("iat"); header.int(Int(issuedAt.timeIntervalSince1970.rounded(.down)))
        header.endObject()
        var compact = Base64URL.encodedBytes(header.bytes)
        compact.append(UInt8(ascii: "."))
        compact += Base64URL.encodedBytes(payload)
        let signature = try privateKey.signature(for: compact)
        compact.append(UInt8(ascii: "."))
        compact += Base64URL.encodedBytes(signature)
        return compact
    }

    /// `sign(payload:kid:privateKey:)` for text: the compact serialization as a string.
    public static func sign(payload: String, kid: String, privateKey: Curve25519.Signing.PrivateKey,
                            issuedAt: Date = Date()) throws -> String {
        String(decoding: try sign(payload: Array(payload.utf8), kid: kid, privateKey: privateKey, issuedAt: issuedAt), as: UTF8.self)
    }

    /// A compact JWS taken apart, its signature not yet checked.
    public struct Parts: Sendable {
        /// `kid` of the protected header.
        public var kid: String
        /// `iat` of the protected header (seconds since the epoch), nil when absent.
        public var issuedAt: Int?
        /// The decoded payload: the message.
        public var payload: [UInt8]
        /// The 64-byte Ed25519 signature.
        public var signature: [UInt8]
        /// Where the signing input (`header "." payload`, as sent) ends in the message.
        public var signingInputEnd: Int
    }

    /// Why a message is not an EdDSA JWS this daemon accepts.
    public enum Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        case notCompact
        case badBase64(String)
        case badHeader(String)
        case unsupportedAlgorithm(String)
        case badSignatureLength(Int)

        public var description: String {
            switch self {
            case .notCompact:
                return "not a signed message: expected a JWS in compact serialization (header.payload.signature, base64url)"
            case .badBase64(let part):
                return "JWS \(part): not base64url without padding"
            case .badHeader(let why):
                return "JWS header: \(why)"
            case .unsupportedAlgorithm(let alg):
                return "JWS header: alg \(WireLimits.quoted(alg)) is not supported (only EdDSA)"
            case .badSignatureLength(let count):
                return "JWS signature: \(count) bytes, expected 64 (Ed25519)"
            }
        }
    }

    /// Takes a compact JWS apart and reads its header (`JWSHeader`: at most 4 KiB, each member
    /// once): `alg` must be `EdDSA`, `kid` a non-empty string, and no `crit` (no extension is understood here, so RFC 7515 4.1.11 says refuse);
    /// `iat`, when present, whole seconds (whether it is there and recent is the caller's
    /// check, against Redis's clock: `Trust.refusal(signedAt:by:now:maxAge:)`).
    /// ASCII whitespace around the message is ignored (a shell's trailing newline).
    public static func parse(_ raw: [UInt8]) -> Result<Parts, Malformed> {
        var start = 0, end = raw.count
        while start < end, isSpace(raw[start]) { start += 1 }
        while end > start, isSpace(raw[end - 1]) { end -= 1 }
        guard let firstDot = dot(in: raw, from: start, to: end),
              let secondDot = dot(in: raw, from: firstDot + 1, to: end),
              dot(in: raw, from: secondDot + 1, to: end) == nil else {
            return .failure(.notCompact)
        }
        guard let header = Base64URL.decode(raw[start..<firstDot]) else { return .failure(.badBase64("header")) }
        let kid: String
        let issuedAt: Int?
        switch JWSHeader.read(header) {
        case .failure(let malformed):
            return .failure(.badHeader(malformed.message))
        case .success(let fields):
            guard case .string(let alg) = fields.alg else { return .failure(.badHeader("alg: required (a string)")) }
            guard alg == "EdDSA" else { return .failure(.unsupportedAlgorithm(alg)) }
            guard case .string(let id) = fields.kid, !id.isEmpty else {
                return .failure(.badHeader("kid: required (the signing principal's id)"))
            }
            if fields.crit != nil { return .failure(.badHeader("crit: no header extension is supported")) }
            kid = id
            switch fields.iat {
            case nil, .null?:
                issuedAt = nil
            case .number(let token)?:
                guard let seconds = wholeSeconds(token) else {
                    return .failure(.badHeader("iat: must be whole seconds since the Unix epoch"))
                }
                issuedAt = seconds
            default:
                return .failure(.badHeader("iat: must be a number (whole seconds since the Unix epoch)"))
            }
        }
        guard let payload = Base64URL.decode(raw[(firstDot + 1)..<secondDot]) else { return .failure(.badBase64("payload")) }
        guard let signature = Base64URL.decode(raw[(secondDot + 1)..<end]) else { return .failure(.badBase64("signature")) }
        guard signature.count == 64 else { return .failure(.badSignatureLength(signature.count)) }
        return .success(Parts(kid: kid, issuedAt: issuedAt, payload: payload, signature: signature, signingInputEnd: secondDot))
    }

    /// A number token that is a whole number fitting in 53 bits (`1764590400`, `1.7645904e9`).
    private static func wholeSeconds(_ token: String) -> Int? {
        guard let value = Double(token), value.isFinite, value == value.rounded(), abs(value) < 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }

    /// Whether `parts`, taken from `raw`, carry a valid signature of `key` over the signing input.
    public static func isValid(_ parts: Parts, in raw: [UInt8], key: Curve25519.Signing.PublicKey) -> Bool {
        var start = 0
        while start < parts.signingInputEnd, isSpace(raw[start]) { start += 1 }
        return key.isValidSignature(parts.signature, for: raw[start..<parts.signingInputEnd])
    }

    /// The first `.` in `raw[from..<to]`: memchr, since the payload part can be most of a megabyte
    /// and a byte-by-byte search of it showed up next to the signature check.
    private static func dot(in raw: [UInt8], from: Int, to: Int) -> Int? {
        guard from < to else { return nil }
        return raw.withUnsafeBufferPointer { buffer -> Int? in
            guard let base = buffer.baseAddress, let found = memchr(base + from, Int32(UInt8(ascii: ".")), to - from) else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
    }

    @inline(__always)
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
