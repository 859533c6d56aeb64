import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a pending approval and wait for the daemon's answer (exit 0 applied, 1 refused).")

    @OptionGroup var client: ClientOptions
    @Argument(help: "The approval id, or a unique prefix of a pending one.") var id: String
    @OptionGroup var decision: DecisionOptions
    @Option(help: "Why (optional).") var reason: String?

    func validate() throws {
        try IDPrefix.validate(id, "ID")
        try decision.validate()
    }

    func run() throws {
        try DecisionSender(client: client, options: decision).send("approve", id: id, reason: reason ?? "")
    }
}

struct Reject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a pending approval and wait for the daemon's answer (exit 0 applied, 1 refused).")

    @OptionGroup var client: ClientOptions
    @Argument(help: "The approval id, or a unique prefix of a pending one.") var id: String
    @OptionGroup var decision: DecisionOptions
    @Option(help: "Why (required).") var reason: String

    func validate() throws {
        try IDPrefix.validate(id, "ID")
        try decision.validate()
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason: a rejection needs a reason") }
    }

    func run() throws {
        try DecisionSender(client: client, options: decision).send("reject", id: id, reason: reason)
    }
}

struct DecisionOptions: ParsableArguments {
    @Option(help: "Who decides (the approver's user id).") var user: String
    @Option(help: "Sign the decision with this Ed25519 key file (PROTOCOL.md section 10).") var key: String?
    @Option(help: "The reply key starts with this, as the daemon's --reply-prefix requires (env COORD_REPLY_PREFIX).") var replyPrefix: String?
    @Option(help: "Seconds to wait for the daemon's answer.") var timeout: Double = 10

    func validate() throws {
        try IDPrefix.validate(user, "--user")
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout: between 0 and 3600 seconds") }
        if let replyPrefix, replyPrefix.isEmpty || !replyPrefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw ValidationError("--reply-prefix: printable ASCII without spaces")
        }
    }

    var prefixForReplies: String? {
        replyPrefix ?? Environment.value("COORD_REPLY_PREFIX")
    }
}

/// Pushes one decision onto `<prefix>:approvals` (PROTOCOL.md section 3, JSON form) and waits
/// for its reply on a key of its own, which it deletes afterwards.
struct DecisionSender {
    let client: ClientOptions
    let options: DecisionOptions

    func send(_ verb: String, id typed: String, reason: String) throws {
        try answering {
            let connection = try client.connect()
            defer { connection.close() }
            let keys = client.keys
            let id = try IDPrefix.approval(typed, keys: keys, connection: connection)
            let replyTo = replyKey(keys: keys)
            let requestID = "cli-\(randomToken())"
            let decision: [String: Any] = [
                "approval_id": id, "decision": verb, "user_id": options.user, "reason": reason,
                "reply_to": replyTo, "request_id": requestID,
            ]
            let json = try JSONSerialization.data(withJSONObject: decision, options: [.sortedKeys, .withoutEscapingSlashes])
            let message = try DecisionSigning.message(Array(json), keyFile: options.key, principal: options.user)
            _ = try connection.send("LPUSH", keys.approvals, message)
            defer { _ = try? connection.send("DEL", replyTo) }
            guard let (_, bytes) = try connection.blockingPop([replyTo], timeout: options.timeout) else {
                // Under --trust an unsigned decision (or one whose signature does not verify, or
                // whose reply key is outside the user's namespace) is dead-lettered unanswered.
                let unsigned = options.key == nil ? "; a daemon under --trust answers only signed decisions (--key)" : ""
                throw CommandFailure("no answer within \(Int(options.timeout)) s: is a daemon running? (coordinatord status)\(unsigned); the decision stays queued on \(keys.approvals) or went to \(keys.dead)")
            }
            guard let reply = jsonObject(bytes) else {
                throw CommandFailure("unreadable answer: \(String(decoding: bytes, as: UTF8.self))")
            }
            if client.json { printJSONLine(reply) }
            guard reply["ok"] as? Bool == true, let approval = reply["result"] as? [String: Any] else {
                let error = reply["error"] as? [String: Any] ?? [:]
                throw CommandFailure("\(error.string("code") ?? "refused"): \(error.string("message") ?? "the daemon refused the decision")")
            }
            if !client.json { Terminal.line(Self.describe(approval, verb: verb)) }
        }
    }

    /// `--reply-prefix P` gives `P<user>:…`: what a restricted daemon user may write, in the
    /// deciding user's own namespace, where a daemon under `--trust` answers a decision signed
    /// by that user (PROTOCOL.md section 10) and the user's Redis user may read. Otherwise a
    /// key outside the daemon's prefix, which the daemon refuses to write under.
    private func replyKey(keys: Keys) -> String {
        if let prefix = options.prefixForReplies { return "\(prefix)\(options.user):cli:\(randomToken())" }
        let key = "coordinatord:cli:\(randomToken())"
        return key.hasPrefix(keys.prefix + ":") ? "coordinatord-cli:\(randomToken())" : key
    }

    static func describe(_ approval: [String: Any], verb: String) -> String {
        let id = shown(approval.string("id") ?? "?")
        let what = shown("\(approval.string("risk_level") ?? "?") risk, \(approval.string("customer_id") ?? "?") \(approval.string("recommendation_id") ?? "?")")
        switch approval.string("status") {
        case "approved":
            let plan = approval.string("plan_id").map { "; plan \(shown($0))" } ?? ""
            return "\(Terminal.paint("approved", .green)) \(id) (\(what))\(plan)"
        case "rejected":
            return "\(Terminal.paint("rejected", .red)) \(id) (\(what)): \(shown(approval.string("rejection_reason") ?? ""))"
        case "pending":
            let votes = (approval["approvers"] as? [Any])?.count ?? 0
            let needed = approval.int("required_approvals") ?? 1
            return "vote recorded on \(id) (\(what)): \(votes) of \(needed) approvals; waiting for another approver"
        default:
            return "\(verb) \(id): \(shown(approval.string("status") ?? "?"))"
        }
    }
}
