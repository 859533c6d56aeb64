import Foundation

/// A message from `coord:approvals`, in either form of PROTOCOL.md section 3:
/// `{"approval_id","decision","user_id","reason","reply_to"}` or the plain-text line
/// `approve <approval_id> <user_id>` / `reject <approval_id> <user_id> <reason ...>`.
public struct ApprovalDecisionMessage: Sendable, Equatable {
    /// The approval decided on.
    public var approvalID: String
    /// Approve or reject, with the deciding user (and a reject's reason).
    public var decision: ApprovalDecision
    /// Where the reply goes; nil for none (always nil in the plain-text form).
    public var replyTo: String?
    /// The caller's id for the decision, echoed in the reply.
    public var requestID: String?

    /// A decision as parsed.
    public init(approvalID: String, decision: ApprovalDecision, replyTo: String? = nil, requestID: String? = nil) {
        self.approvalID = approvalID
        self.decision = decision
        self.replyTo = replyTo
        self.requestID = requestID
    }

    /// Parses either form: JSON when the message starts with `{`, else the plain-text line.
    /// Identifiers follow PROTOCOL.md 2.5; a reason over 4 KiB is `too_large`.
    public static func parse(_ bytes: [UInt8]) throws(ValidationError) -> ApprovalDecisionMessage {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ValidationError(path: "", message: "message is not valid UTF-8")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") { return try parseJSON(bytes) }
        return try parseLine(trimmed)
    }

    /// The JSON form, read with `JSONLexer` (the reader of every queued message): strict, so
    /// that what `JSONSerialization` refuses (a lone surrogate escape) is refused here too.
    private static func parseJSON(_ bytes: [UInt8]) throws(ValidationError) -> ApprovalDecisionMessage {
        switch TopLevelJSON.members(bytes, strict: true) {
        case .success(let members): return try parse(json: members)
        case .failure(let malformed): throw ValidationError(path: "", message: "not valid JSON: \(malformed.message)")
        }
    }

    /// A decision from the top-level members of its JSON form (`TopLevelJSON.members(_:strict:)`,
    /// which the daemon also reads `reply_to` from, so the message is lexed once). Members of
    /// the wrong type are named first, in the order approval_id, decision, user_id, reason,
    /// reply_to, request_id; then what is missing or breaks the rules.
    public static func parse(json members: [String: TopLevelJSON.Value]) throws(ValidationError) -> ApprovalDecisionMessage {
        func string(_ name: String) throws(ValidationError) -> String? {
            switch members[name] {
            case nil, .null: return nil
            case .string(let value): return value
            case .other: throw ValidationError(path: name, message: "expected a string")
            }
        }
        let form = (approval_id: try string("approval_id"), decision: try string("decision"), user_id: try string("user_id"),
                    reason: try string("reason"), reply_to: try string("reply_to"), request_id: try string("request_id"))
        guard let id = form.approval_id, !id.isEmpty else { throw ValidationError(path: "approval_id", message: "required") }
        guard let decisionText = form.decision else { throw ValidationError(path: "decision", message: "required") }
        guard let kind = kind(decisionText) else {
            throw ValidationError(path: "decision", message: "unknown value \(WireLimits.quoted(decisionText)) (approve or reject)")
        }
        guard let user = form.user_id, !user.isEmpty else { throw ValidationError(path: "user_id", message: "required") }
        let reason = form.reason ?? ""
        if let requestID = form.request_id { try WireLimits.checkIdentifier(requestID, path: "request_id") }
        try WireLimits.checkIdentifier(id, path: "approval_id")
        try WireLimits.checkIdentifier(user, path: "user_id")
        try WireLimits.checkText(reason, path: "reason")
        if kind == .reject && reason.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError(path: "reason", message: "a rejection needs a reason")
        }
        return ApprovalDecisionMessage(approvalID: id, decision: ApprovalDecision(kind: kind, userID: user, reason: reason),
                                       replyTo: form.reply_to.flatMap { $0.isEmpty ? nil : $0 },
                                       requestID: form.request_id.flatMap { $0.isEmpty ? nil : $0 })
    }

    private static func parseLine(_ line: String) throws(ValidationError) -> ApprovalDecisionMessage {
        let usage = "expected \"approve <approval_id> <user_id>\" or \"reject <approval_id> <user_id> <reason>\""
        let words = line.split(maxSplits: 3, omittingEmptySubsequences: true, whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = words.first else { throw ValidationError(path: "", message: "empty decision; \(usage)") }
        guard let kind = kind(String(first)) else {
            throw ValidationError(path: "", message: "unknown decision \(WireLimits.quoted(first)); \(usage)")
        }
        guard words.count >= 3 else { throw ValidationError(path: "", message: "missing \(words.count == 1 ? "approval_id and user_id" : "user_id"); \(usage)") }
        let reason = words.count > 3 ? String(words[3]).trimmingCharacters(in: .whitespaces) : ""
        try WireLimits.checkIdentifier(String(words[1]), path: "approval_id")
        try WireLimits.checkIdentifier(String(words[2]), path: "user_id")
        try WireLimits.checkText(reason, path: "reason")
        if kind == .reject && reason.isEmpty {
            throw ValidationError(path: "reason", message: "a rejection needs a reason; \(usage)")
        }
        return ApprovalDecisionMessage(approvalID: String(words[1]),
                                       decision: ApprovalDecision(kind: kind, userID: String(words[2]), reason: reason))
    }

    private static func kind(_ word: String) -> ApprovalDecision.Kind? {
        switch word.lowercased() {
        case "approve", "approved": .approve
        case "reject", "rejected": .reject
        default: nil
        }
    }
}
