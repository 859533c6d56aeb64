/// The byte limits of PROTOCOL.md sections 2.1 and 2.5, shared by the engine's validation and
/// the daemon's intake. Every limit counts bytes of UTF-8, never characters: a key's length and
/// a message's size are what an attacker can grow.
public enum WireLimits {
    /// Identifiers are 1 to this many bytes.
    public static let identifierMaxBytes = 128
    /// `reply_to` is at most this many bytes.
    public static let replyToMaxBytes = 256
    /// `title`, `description`, `reason`, `estimated_impact`: at most this many bytes each.
    public static let textMaxBytes = 4096
    /// `parameters` and `metadata`: at most this many bytes each, as JSON.
    public static let mapMaxBytes = 65_536
    /// `action` is 1 to this many bytes of lowercase snake case.
    public static let actionMaxBytes = 64
    /// Each of `affected_resources[]` is an identifier of up to this many bytes (ARNs are long).
    public static let resourceMaxBytes = 512
    /// Affected resources one recommendation may list unless `--max-resources` says otherwise.
    public static let defaultMaxResources = 1000
    /// Affected resources one request may list in all, over all its recommendations.
    public static let requestMaxResources = 10_000
    /// An error message quotes at most this many bytes of a value the client sent.
    public static let quotedMaxBytes = 128
    /// No error message is longer than this many bytes.
    public static let errorMessageMaxBytes = 1024

    /// `value` as an error message quotes it: in double quotes, cut after its first 128 bytes
    /// (at a character boundary) with `…` after the cut. Every client value an error message
    /// repeats goes through here, so a 900 KB `type` makes a short error, not a 900 KB one.
    public static func quoted(_ value: some StringProtocol) -> String {
        "\"" + cut(value, at: quotedMaxBytes) + "\""
    }

    /// The first at most `maxBytes` bytes of `text`, ending on a character boundary, followed by
    /// `…` when something was cut.
    public static func cut(_ text: some StringProtocol, at maxBytes: Int) -> String {
        let whole = String(text)
        let utf8 = whole.utf8
        if utf8.count <= maxBytes { return whole }
        var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
        // Back to the start of a scalar (continuation bytes are 10xxxxxx).
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[utf8.startIndex..<end], as: UTF8.self) + "…"
    }

    /// An error message kept within `errorMessageMaxBytes`: the last guard for messages built
    /// from text that did not come through `quoted` (the decoder's own descriptions).
    public static func boundedMessage(_ message: String) -> String {
        message.utf8.count <= errorMessageMaxBytes ? message : cut(message, at: errorMessageMaxBytes - 3)
    }

    /// The rule an identifier breaks, or nil when it is one: 1–128 bytes of printable ASCII,
    /// without spaces and without `{ } * ? [ ] \ "` (glob, hash-tag and quoting characters, so
    /// that a key built from it matches nothing but itself).
    public static func identifierProblem(_ value: String, maxBytes: Int = identifierMaxBytes) -> String? {
        let bytes = value.utf8
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > maxBytes {
            return "at most \(maxBytes) bytes, got \(bytes.count)"
        }
        for byte in bytes where !isIdentifierByte(byte) {
            return "only printable ASCII without spaces or { } * ? [ ] \\ \" (found byte 0x\(String(byte, radix: 16, uppercase: true)))"
        }
        return nil
    }

    /// Throws `invalid_request`'s ValidationError naming `path` when `value` is no identifier.
    public static func checkIdentifier(_ value: String, path: String, maxBytes: Int = identifierMaxBytes) throws(ValidationError) {
        if let problem = identifierProblem(value, maxBytes: maxBytes) { throw ValidationError(path: path, message: problem) }
    }

    /// The rule an `action` breaks, or nil when it is one: 1–64 bytes of lowercase snake case,
    /// `[a-z][a-z0-9_]*`. One spelling per action, so `DROP_DATABASE`, `drop-database`,
    /// `drop_database ` and `drop_database` followed by a zero-width space are refused rather
    /// than taken for actions the risk floor and the contradiction table do not know.
    public static func actionProblem(_ value: String) -> String? {
        let bytes = value.utf8
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > actionMaxBytes { return "at most \(actionMaxBytes) bytes, got \(bytes.count)" }
        var first = true
        for byte in bytes {
            let lower = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
            let other = (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            if !(lower || (!first && other)) {
                return "must be lowercase snake case [a-z][a-z0-9_]* (got \(quoted(value)))"
            }
            first = false
        }
        return nil
    }

    /// Throws `too_large`'s ValidationError when a recommendation lists more than `perRecommendation`
    /// affected resources, or the request more than `perRequest` in all.
    public static func checkResourceCounts(_ request: CoordinationRequest, perRecommendation: Int,
                                           perRequest: Int = requestMaxResources) throws(ValidationError) {
        var total = 0
        for (index, rec) in request.recommendations.enumerated() {
            let count = rec.affectedResources.count
            if count > perRecommendation {
                throw ValidationError(path: "recommendations[\(index)].affected_resources",
                                      message: "\(count) items, over --max-resources (\(perRecommendation))", tooLarge: true)
            }
            total += count
        }
        if total > perRequest {
            throw ValidationError(path: "recommendations", message: "\(total) affected resources in all, over \(perRequest) per request",
                                  tooLarge: true)
        }
    }

    @inline(__always)
    static func isIdentifierByte(_ byte: UInt8) -> Bool {
        guard byte > 0x20, byte < 0x7F else { return false }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "*"), UInt8(ascii: "?"),
             UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "\\"), UInt8(ascii: "\""):
            return false
        default:
            return true
        }
    }

    /// The rule a `reply_to` breaks, or nil when the daemon may write a reply there: at most
    /// 256 bytes of printable ASCII without spaces, never `prefix` itself or a key under it
    /// (the daemon must not be steerable into its own state), and starting with `replyPrefix`
    /// when one is configured.
    public static func replyToProblem(_ value: String, prefix: String, replyPrefix: String?) -> String? {
        let bytes = value.utf8
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > replyToMaxBytes { return "at most \(replyToMaxBytes) bytes, got \(bytes.count)" }
        for byte in bytes where byte <= 0x20 || byte >= 0x7F {
            return "only printable ASCII without spaces (found byte 0x\(String(byte, radix: 16, uppercase: true)))"
        }
        if value == prefix || value.hasPrefix(prefix + ":") {
            return "must not be the daemon's own key prefix \(quoted(prefix)) or a key under it"
        }
        if let replyPrefix, !value.hasPrefix(replyPrefix) {
            return "must start with the reply prefix \(quoted(replyPrefix)) (--reply-prefix)"
        }
        return nil
    }

    /// Throws `too_large`'s ValidationError when `text` is over `textMaxBytes`.
    public static func checkText(_ text: String, path: String) throws(ValidationError) {
        let count = text.utf8.count
        if count > textMaxBytes {
            throw ValidationError(path: path, message: "at most \(textMaxBytes) bytes, got \(count)", tooLarge: true)
        }
    }

    /// Throws `too_large`'s ValidationError when `map` as JSON is over `mapMaxBytes`.
    public static func checkMap(_ map: [String: JSONValue], path: String) throws(ValidationError) {
        if map.isEmpty { return }
        var w = JSONWriter(capacity: 256)
        w.value(.object(map))
        if w.bytes.count > mapMaxBytes {
            throw ValidationError(path: path, message: "at most \(mapMaxBytes) bytes as JSON, got \(w.bytes.count)", tooLarge: true)
        }
    }
}
