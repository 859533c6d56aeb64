import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a pending approval and wait for the daemon's answer (exit 0 applied, 1 refused).")

    @OptionGroup var client: ClientOptions
    @OptionGroup var layout: LayoutOptions
    @Argument(help: "The approval id, or a unique prefix of a pending one.") var id: String
    @OptionGroup var decision: DecisionOptions
    @Option(help: "Why (optional).") var reason: String?

    func validate() throws {
        try IDPrefix.validate(id, "ID")
        try decision.validate()
    }

    func run() throws {
        try DecisionSender(client: client, layout: layout, options: decision).send("approve", id: id, reason: reason ?? "")
    }
}

struct Reject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a pending approval and wait for the daemon's answer (exit 0 applied, 1 refused).")

    @OptionGroup var client: ClientOptions
    @OptionGroup var layout: LayoutOptions
    @Argument(help: "The approval id, or a unique prefix of a pending one.") var id: String
    @OptionGroup var decision: DecisionOptions
    @Option(help: "Why (required).") var reason: String

    func validate() throws {
        try IDPrefix.validate(id, "ID")
        try decision.validate()
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason: a rejection needs a reason") }
    }

    func run() throws {
        try DecisionSender(client: client, layout: layout, options: decision).send("reject", id: id, reason: reason)
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
/// for its reply on a key of its own, which it deletes afterwards. On a cluster the same entry
/// queue: ingress routes a decision by its approval id, and the partition's outbox delivers
/// the reply to its key, wherever that key's slot is.
struct DecisionSender {
    let client: ClientOptions
    let layout: LayoutOptions
    let options: DecisionOptions

    func send(_ verb: String, id typed: String, reason: String) throws {
        try client.withState(layout) { redis, layout in
            let keys = layout.keys
            let id = try IDPrefix.approval(typed, layout: layout, redis: redis)
            let replyTo = Decisions.replyKey(replyPrefix: options.prefixForReplies, user: options.user, tool: "cli", keys: keys)
            let json = try Decisions.payload(approvalID: id, verb: verb, user: options.user, reason: reason,
                                             replyTo: replyTo, requestID: "cli-\(randomToken())")
            let message = try DecisionSigning.message(json, keyFile: options.key, principal: options.user)
            guard let bytes = try Decisions.push(message, replyTo: replyTo, keys: keys, redis: redis, timeout: options.timeout) else {
                // Under --trust an unsigned decision (or one whose signature does not verify, or
                // whose reply key is outside the user's namespace) is dead-lettered unanswered.
                let unsigned = options.key == nil ? "; a daemon under --trust answers only signed decisions (--key)" : ""
                throw CommandFailure("no answer within \(Int(options.timeout)) s: is a daemon running? (coordinatord status)\(unsigned); the decision stays queued on \(keys.approvals) or went to \(keys.dead)")
            }
            if client.json, let reply = jsonObject(bytes) { printJSONLine(reply) }
            let approval = try Decisions.outcome(bytes).get()
            if !client.json { Terminal.line(Decisions.describe(approval, verb: verb) { Terminal.paint($0, $1 ? .green : .red) }) }
        }
    }
}
