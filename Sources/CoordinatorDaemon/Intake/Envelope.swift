import Coordination
import Foundation

/// Ids for requests that came without one. Foundation's `UUID()` opens /dev/urandom on every
/// call on Linux, which showed up as a tenth of a small request's cost.
enum RequestIDs {
    static func next() -> String {
        var ids = UUIDGenerator()
        return ids.next()
    }
}

/// The fields every request shares (PROTOCOL.md section 2.1), plus the few that the
/// non-`coordinate` kinds carry. The `coordinate` body is decoded by `RequestDecoding`.
enum Envelope {
    enum Kind: String, CaseIterable {
        case coordinate
        case executePlan = "execute_plan"
        case getPlan = "get_plan"
        case getApproval = "get_approval"
        case listApprovals = "list_approvals"
    }

    /// What can be read of a message, as far as it can be read: a reply goes wherever
    /// `reply_to` could be found, even when the rest is malformed.
    struct Parsed {
        var kind: Kind?
        var kindName: String
        var requestID: String
        var requestIDGiven: Bool
        var replyTo: String?
        var planID = ""
        var approvalID = ""
        var customerID = ""
        var failure: Refusal?
    }

    /// Where replies may go: never under the daemon's own `prefix`, and under `replyPrefix`
    /// when one is configured (section 2.1).
    struct ReplyRules: Sendable {
        var prefix: String
        var replyPrefix: String?

        /// The rule `replyTo` breaks, or nil when a reply may be written there.
        func problem(_ replyTo: String) -> String? {
            WireLimits.replyToProblem(replyTo, prefix: prefix, replyPrefix: replyPrefix)
        }
    }

    /// A `request_id` longer than this is not echoed (a reply stays small whatever was sent).
    static let echoedRequestIDMax = 1024

    /// A message over `--max-message-bytes`, of which only `head` (its first bytes) was read:
    /// refused `too_large`, with what routes its answer read from the members that stand whole
    /// in `head` (PROTOCOL.md 6: a bounded scan, not a parse of the whole).
    static func parseOversized(head: [UInt8], bytes: Int, maxBytes: Int, rules: ReplyRules) -> Parsed {
        var parsed = Parsed(kind: nil, kindName: "coordinate", requestID: RequestIDs.next(),
                            requestIDGiven: false, replyTo: nil,
                            failure: Refusal(.tooLarge, "message is \(bytes) bytes, over --max-message-bytes (\(maxBytes))"))
        let object = TopLevelJSON.leadingMembers(head)
        if case .string(let id) = object["request_id"], !id.isEmpty, id.utf8.count <= echoedRequestIDMax {
            parsed.requestID = id
        }
        if case .string(let kind) = object["kind"] { parsed.kindName = WireLimits.cut(kind, at: WireLimits.quotedMaxBytes) }
        if case .string(let replyTo) = object["reply_to"], !replyTo.isEmpty, rules.problem(replyTo) == nil {
            parsed.replyTo = replyTo
        }
        return parsed
    }

    static func parse(_ raw: [UInt8], maxBytes: Int, rules: ReplyRules) -> Parsed {
        var parsed = Parsed(kind: nil, kindName: "coordinate", requestID: RequestIDs.next(),
                            requestIDGiven: false, replyTo: nil, failure: nil)
        guard String(validating: raw, as: UTF8.self) != nil else {
            parsed.failure = Refusal(.invalidJSON, "message is not valid UTF-8")
            return parsed
        }
        let object: [String: TopLevelJSON.Value]
        switch TopLevelJSON.members(raw) {
        case .success(let members): object = members
        case .failure(let malformed):
            // Valid JSON that is not an object is JSON of the wrong shape (section 2.4).
            if Self.isJSONValue(raw) {
                parsed.failure = Refusal(.invalidRequest, "message must be a JSON object")
            } else {
                parsed.failure = Refusal(.invalidJSON, "message is not valid JSON: \(malformed.message)")
            }
            return parsed
        }
        // Read what routes the answer first, so even a bad message is answered, and echo the
        // request_id as it was sent, even when it is refused for it.
        if case .string(let id) = object["request_id"], !id.isEmpty, id.utf8.count <= echoedRequestIDMax {
            parsed.requestID = id
        }
        if case .string(let replyTo) = object["reply_to"], !replyTo.isEmpty {
            // A reply_to that breaks the rules gets no reply at all: the message is refused
            // into the dead-letter list (a reply there could be a write to the daemon's state).
            if let problem = rules.problem(replyTo) {
                parsed.failure = Refusal(.invalidRequest, "reply_to: \(problem)")
                return parsed
            }
            parsed.replyTo = replyTo
        }
        // The reply echoes the kind; an unknown one is echoed cut, as errors quote values.
        if case .string(let kind) = object["kind"] { parsed.kindName = WireLimits.cut(kind, at: WireLimits.quotedMaxBytes) }

        if raw.count > maxBytes {
            parsed.failure = Refusal(.tooLarge, "message is \(raw.count) bytes, over --max-message-bytes (\(maxBytes))")
            return parsed
        }
        if let failure = fieldFailure(object) {
            parsed.failure = failure
            return parsed
        }
        parsed.requestIDGiven = object["request_id"]?.string != nil
        parsed.kind = Kind(rawValue: parsed.kindName)
        parsed.planID = object["plan_id"]?.string ?? ""
        parsed.approvalID = object["approval_id"]?.string ?? ""
        parsed.customerID = object["customer_id"]?.string ?? ""
        return parsed
    }

    /// Whether `raw` is one JSON value of any kind (a top level that is not an object).
    private static func isJSONValue(_ raw: [UInt8]) -> Bool {
        guard let first = raw.first(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }),
              first != UInt8(ascii: "{") else { return false }
        return raw.withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer)
            do throws(JSONLexer.Malformed) {
                try lexer.skipValue(maxDepth: TopLevelJSON.maxDepth)
                lexer.skipSpace()
                return lexer.atEnd
            } catch {
                return false
            }
        }
    }

    private static func fieldFailure(_ object: [String: TopLevelJSON.Value]) -> Refusal? {
        if let kind = object["kind"] {
            guard let name = kind.string else { return Refusal(.invalidRequest, "kind: must be a string") }
            guard Kind(rawValue: name) != nil else {
                let known = Kind.allCases.map(\.rawValue).joined(separator: ", ")
                return Refusal(.invalidRequest, "kind: unknown value \(WireLimits.quoted(name)) (expected one of \(known))")
            }
        }
        if let id = object["request_id"], id != .null {
            guard let text = id.string else { return Refusal(.invalidRequest, "request_id: must be a string") }
            if let problem = WireLimits.identifierProblem(text) { return Refusal(.invalidRequest, "request_id: \(problem)") }
        }
        if let replyTo = object["reply_to"], replyTo != .null {
            guard let text = replyTo.string, !text.isEmpty else {
                return Refusal(.invalidRequest, "reply_to: must be a non-empty string")
            }
        }
        let kind = object["kind"]?.string.flatMap(Kind.init(rawValue:)) ?? .coordinate
        let required: String? = switch kind {
        case .coordinate: nil
        case .executePlan, .getPlan: "plan_id"
        case .getApproval: "approval_id"
        case .listApprovals: "customer_id"
        }
        if let field = required {
            guard let value = object[field]?.string, !value.isEmpty else {
                return Refusal(.invalidRequest, "\(field): required (a non-empty string) for kind \"\(kind.rawValue)\"")
            }
            if let problem = WireLimits.identifierProblem(value) { return Refusal(.invalidRequest, "\(field): \(problem)") }
        }
        return nil
    }
}

extension TopLevelJSON.Value {
    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

extension DaemonContext {
    /// This daemon's rules for `reply_to` (section 2.1), for requests and decisions alike.
    var replyRules: Envelope.ReplyRules {
        Envelope.ReplyRules(prefix: configuration.prefix, replyPrefix: configuration.replyPrefix)
    }
}
