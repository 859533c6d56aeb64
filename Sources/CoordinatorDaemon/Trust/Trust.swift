import Coordination
import Crypto
import Foundation

/// The trust file at work (PROTOCOL.md section 10): who may send what, and the risk floor.
///
/// Immutable and shared by every intake loop: verification runs on each loop's own thread, in
/// parallel, with no lock. Every check here is pure; the handlers call `admit` before they read
/// or write anything for a message, and the checks that need an object's customer right after
/// reading it.
public struct Trust: Sendable {
    public let principals: [String: Principal]
    public let riskFloor: RiskFloor

    public init(principals: [String: Principal] = [:], riskFloor: RiskFloor = RiskFloor()) {
        self.principals = principals
        self.riskFloor = riskFloor
    }

    /// No principals and no floor: every writer is trusted.
    public static let none = Trust()

    /// With principals listed, every message must be signed by one of them.
    public var enforcing: Bool { !principals.isEmpty }

    /// Reads and checks a trust file; a daemon given a bad one does not start.
    public static func load(path: String) throws(TrustFileError) -> Trust {
        try TrustFile.load(path: path)
    }

    /// Whether `id` may name a principal: 1-128 bytes of `[A-Za-z0-9@._+-]` (section 10).
    public static func isPrincipalID(_ id: String) -> Bool { TrustFile.isPrincipalID(id) }

    /// A trust file's contents (for tests and tools).
    public static func parse(_ bytes: [UInt8]) throws(TrustFileError) -> Trust {
        try TrustFile.parse(bytes)
    }

    // MARK: - Signatures

    /// What a queue's message is once its signature has been looked at.
    struct Admission {
        /// The message as it would have been sent unsigned: the JWS payload (even when the
        /// signature failed, so that a refusal can still be answered), or the raw bytes.
        var message: [UInt8]
        /// Who signed it; nil when the trust file lists no principals.
        var principal: Principal?
        /// Set when the message must be refused without reading or writing any state for it.
        /// Such a message is never answered: nothing in it, `reply_to` included, was
        /// vouched for by anyone.
        var refusal: Refusal?
        /// The header's `iat` of a verified message (checked against Redis's clock by the
        /// handler, `refusal(signedAt:now:maxAge:)`).
        var issuedAt: Int?
        /// SHA-256 (hex) of the verified signature: what names the message for replay detection.
        var signatureDigest: String?
    }

    /// Verifies `raw` as a JWS of a listed principal. Without principals, `raw` is the message.
    func admit(_ raw: [UInt8]) -> Admission {
        guard enforcing else { return Admission(message: raw) }
        let parts: JWS.Parts
        switch JWS.parse(raw) {
        case .success(let parsed):
            parts = parsed
        case .failure(let malformed):
            return Admission(message: raw, refusal: Self.forbidden("\(malformed)"))
        }
        guard let principal = principals[parts.kid] else {
            return Admission(message: parts.payload, refusal: Self.forbidden("kid \(WireLimits.quoted(parts.kid)) is not a principal of the trust file"))
        }
        guard JWS.isValid(parts, in: raw, key: principal.key.publicKey) else {
            return Admission(message: parts.payload, refusal: Self.forbidden("signature does not verify with the public key of \(WireLimits.quoted(parts.kid))"))
        }
        return Admission(message: parts.payload, principal: principal, issuedAt: parts.issuedAt,
                         signatureDigest: Self.hex(SHA256.hash(data: parts.signature)))
    }

    // MARK: - Time and replay

    /// How far ahead of Redis's clock a signing time may be (a signer's clock running fast).
    static let futureSkew = 60

    /// A verified message is refused when its `iat` is missing, more than `maxAge` seconds in
    /// the past, or more than `futureSkew` ahead of `now` (Redis's clock).
    func refusal(signedAt issuedAt: Int?, by principal: Principal?, now: Date, maxAge: Int) -> Refusal? {
        guard enforcing, principal != nil else { return nil }
        guard let issuedAt else {
            return Self.forbidden("signature expired: the JWS header has no iat (the signing time, seconds since the Unix epoch)")
        }
        let seconds = Int(now.timeIntervalSince1970.rounded(.down))
        if issuedAt < seconds - maxAge {
            return Self.forbidden("signature expired: iat \(issuedAt) is \(seconds - issuedAt) s old, over --signature-max-age (\(maxAge) s); sign the message again")
        }
        if issuedAt > seconds + Self.futureSkew {
            return Self.forbidden("signature expired: iat \(issuedAt) is \(issuedAt - seconds) s ahead of Redis's clock (at most \(Self.futureSkew) s)")
        }
        return nil
    }

    /// How long a seen signature is remembered: as long as a message signed with it could still
    /// be within the window (`iat` up to `futureSkew` ahead, then `maxAge`), and a second more
    /// for the rounding of `iat` to whole seconds.
    static func seenTTL(maxAge: Int) -> Int { maxAge + futureSkew + 1 }

    /// The answer to a replay of anything but `coordinate` (which gets its first reply again).
    static func replayRefusal() -> Refusal {
        Refusal(.alreadyProcessed, "replay: a message with this signature was already processed")
    }

    /// With a reply prefix `P`, a signed message's `reply_to` must be in its signer's own
    /// namespace, `P<kid>:`. Refused without an answer: the reply_to is what is wrong.
    func refusal(replyTo: String?, by principal: Principal?, replyPrefix: String?) -> Refusal? {
        guard enforcing, let principal, let replyPrefix, let replyTo else { return nil }
        let namespace = replyPrefix + principal.id + ":"
        if replyTo.hasPrefix(namespace) { return nil }
        let shown = replyTo.utf8.count <= 128 ? "\"\(replyTo)\"" : "of \(replyTo.utf8.count) bytes"
        return Self.forbidden("reply_to \(shown) is outside the signer's reply namespace \"\(namespace)\"")
    }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The message inside `raw` when a listed principal signed it, with its signer; nil when
    /// it would be refused. What intake does first, for tools and benchmarks.
    public func verified(_ raw: [UInt8]) -> (message: [UInt8], principal: Principal)? {
        let admission = admit(raw)
        guard admission.refusal == nil, let principal = admission.principal else { return nil }
        return (admission.message, principal)
    }

    // MARK: - What each principal may do

    /// `coordinate` needs `agent`, and every recommendation must be the signer's own, for a
    /// customer and an action its entry allows.
    func refusal(coordinate request: CoordinationRequest, by principal: Principal?) -> Refusal? {
        guard enforcing, let principal else { return nil }
        guard principal.has(.agent) else { return Self.lacks(principal, .agent, "coordinate") }
        guard principal.customers.allows(request.customerID) else {
            return Self.forbidden("customer_id: \"\(principal.id)\" may not act for customer \"\(request.customerID)\"")
        }
        for (index, recommendation) in request.recommendations.enumerated() {
            if recommendation.agentID != principal.id {
                return Self.forbidden("recommendations[\(index)].agent_id: \"\(recommendation.agentID)\" is not the signer \"\(principal.id)\"")
            }
            if !principal.customers.allows(recommendation.customerID) {
                return Self.forbidden("recommendations[\(index)].customer_id: \"\(principal.id)\" may not act for customer \"\(recommendation.customerID)\"")
            }
            if !principal.actions.allows(recommendation.action) {
                return Self.forbidden("recommendations[\(index)].action: \"\(principal.id)\" may not propose \"\(recommendation.action)\"")
            }
        }
        return nil
    }

    /// Before anything is read: `execute_plan` needs `approver` or `agent`, the reads `reader`,
    /// `approver` or `agent` (whose customer is checked once the object is read), and
    /// `list_approvals` names its customer, so it is checked in full here.
    func refusal(_ kind: Envelope.Kind, customer: String, by principal: Principal?) -> Refusal? {
        guard enforcing, let principal else { return nil }
        switch kind {
        case .coordinate:
            return nil
        case .executePlan:
            if principal.has(.approver) || principal.has(.agent) { return nil }
            return Self.forbidden("\"\(principal.id)\" has neither the approver nor the agent role (execute_plan needs one)")
        case .getPlan, .getApproval:
            if principal.has(.reader) || principal.has(.approver) || principal.has(.agent) { return nil }
            return Self.forbidden("\"\(principal.id)\" has none of the reader, approver, agent roles (\(kind.rawValue) needs one)")
        case .listApprovals:
            return readRefusal(kind, customer: customer, by: principal)
        }
    }

    /// Once the plan or approval is read: an agent may start and read only its customers'
    /// objects. `stored` is the object's JSON as stored; nil (not found) is left to the handler.
    func refusal(_ kind: Envelope.Kind, stored: [UInt8]?, by principal: Principal?) -> Refusal? {
        guard enforcing, let principal, let stored else { return nil }
        switch kind {
        case .coordinate, .listApprovals:
            return nil
        case .executePlan:
            if principal.has(.approver) { return nil }
            let customer = Self.customerID(in: stored)
            if let customer, principal.isAgent(of: customer) { return nil }
            return Self.forbidden("\"\(principal.id)\" is not an approver, nor an agent of customer \"\(customer ?? "?")\" (execute_plan)")
        case .getPlan, .getApproval:
            return readRefusal(kind, customer: Self.customerID(in: stored) ?? "", by: principal)
        }
    }

    private func readRefusal(_ kind: Envelope.Kind, customer: String, by principal: Principal) -> Refusal? {
        if principal.has(.reader) || principal.has(.approver) || principal.isAgent(of: customer) { return nil }
        return Self.forbidden("\"\(principal.id)\" is not a reader, an approver, nor an agent of customer \"\(customer)\" (\(kind.rawValue))")
    }

    /// Decisions need `approver`, the JSON form (`message`, the signed payload, is not a
    /// plain-text line), and the decision's `user_id` must be the signer.
    func refusal(decision: ApprovalDecisionMessage?, in message: [UInt8], by principal: Principal?) -> Refusal? {
        guard enforcing, let principal, let decision else { return nil }
        guard message.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{") else {
            return Self.forbidden("under --trust a decision is JSON inside a JWS; plain-text lines are refused")
        }
        guard principal.has(.approver) else { return Self.lacks(principal, .approver, "a decision") }
        guard decision.decision.userID == principal.id else {
            return Self.forbidden("user_id: \"\(decision.decision.userID)\" is not the signer \"\(principal.id)\"")
        }
        return nil
    }

    /// Step results need `agent` (checked before anything is read) ...
    func refusal(stepResultBy principal: Principal?) -> Refusal? {
        guard enforcing, let principal else { return nil }
        return principal.has(.agent) ? nil : Self.lacks(principal, .agent, "a step result")
    }

    /// ... and, once the step is known, must come from the agent the step was sent to.
    func refusal(stepResultBy principal: Principal?, stepAgent: String) -> Refusal? {
        guard enforcing, let principal else { return nil }
        if let refusal = refusal(stepResultBy: principal) { return refusal }
        if principal.id == stepAgent { return nil }
        return Self.forbidden("step result signed by \"\(principal.id)\", but the step was sent to \"\(stepAgent)\"")
    }

    /// Events of a signed decision say who signed it: `data.verified = true`, `data.principal`.
    func marked(_ events: [DomainEvent], by principal: Principal?) -> [DomainEvent] {
        guard let principal else { return events }
        return events.map { event in
            var event = event
            event.data["verified"] = .bool(true)
            event.data["principal"] = .string(principal.id)
            return event
        }
    }

    // MARK: -

    static func forbidden(_ message: String) -> Refusal {
        var failure = Refusal(.forbidden, message)
        failure.alwaysDeadLetter = true
        return failure
    }

    private static func lacks(_ principal: Principal, _ role: Principal.Role, _ what: String) -> Refusal {
        forbidden("\"\(principal.id)\" lacks the \(role.rawValue) role (\(what) needs it)")
    }

    /// `customer_id` of a stored plan or approval, read without decoding the whole object.
    static func customerID(in stored: [UInt8]) -> String? {
        guard case .success(let members) = TopLevelJSON.members(stored) else { return nil }
        return members["customer_id"]?.string
    }
}
