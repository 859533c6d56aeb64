import CoordinatorDaemon
import Foundation
import RedisClient

/// An approval decision (PROTOCOL.md section 3, JSON form) and its reply, as the `approve` and
/// `reject` commands and the console send them.
public enum Decisions {
    /// The decision's JSON, exactly the payload a signature covers.
    public static func payload(approvalID: String, verb: String, user: String, reason: String,
                               replyTo: String, requestID: String) throws -> [UInt8] {
        let decision: [String: Any] = [
            "approval_id": approvalID, "decision": verb, "user_id": user, "reason": reason,
            "reply_to": replyTo, "request_id": requestID,
        ]
        return Array(try JSONSerialization.data(withJSONObject: decision, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// A key for the reply: with a reply prefix `P`, `P<user>:<tool>:…` (the deciding user's own
    /// namespace, where a daemon under `--trust` answers a decision signed by that user and the
    /// user's Redis user may read); otherwise a key outside the daemon's prefix, which the daemon
    /// refuses to write under.
    public static func replyKey(replyPrefix: String?, user: String, tool: String, keys: Keys) -> String {
        if let replyPrefix { return "\(replyPrefix)\(user):\(tool):\(randomToken())" }
        let key = "coordinatord:\(tool):\(randomToken())"
        return key.hasPrefix(keys.prefix + ":") ? "coordinatord-\(tool):\(randomToken())" : key
    }

    /// Pushes `message` onto the approvals queue and waits up to `timeout` for its reply on
    /// `replyTo` (deleted afterwards). Nil when none came. On a cluster the queue is the entry
    /// queue `<prefix>:approvals`, which the daemons' ingress routes by the approval id, and
    /// the reply key is routed by its own slot (the partition's outbox delivers to it).
    public static func push(_ message: [UInt8], replyTo: String, keys: Keys, redis: any StateRedis,
                            timeout: Double) throws -> [UInt8]? {
        _ = try redis.call(RedisCommand("LPUSH", keys.approvals, message))
        defer { _ = try? redis.call(RedisCommand("DEL", replyTo)) }
        return try redis.pop(replyTo, timeout: timeout)
    }

    /// The daemon's answer as a result or a failure for a person.
    public static func outcome(_ bytes: [UInt8]) -> Result<[String: Any], OperationFailure> {
        guard let reply = jsonObject(bytes) else {
            return .failure(OperationFailure("unreadable answer: \(String(decoding: bytes, as: UTF8.self))"))
        }
        guard reply["ok"] as? Bool == true, let approval = reply["result"] as? [String: Any] else {
            let error = reply["error"] as? [String: Any] ?? [:]
            return .failure(OperationFailure("\(error.string("code") ?? "refused"): \(error.string("message") ?? "the daemon refused the decision")"))
        }
        return .success(approval)
    }

    /// A decision's result in one line, as `approve`/`reject` print it and the console shows it:
    /// client text escaped; `paint` colours the outcome word (`true` approved, `false` rejected).
    public static func describe(_ approval: [String: Any], verb: String,
                                paint: (String, Bool) -> String = { text, _ in text }) -> String {
        let shown: (String) -> String = DisplayText.escaped
        let id = shown(approval.string("id") ?? "?")
        let what = shown("\(approval.string("risk_level") ?? "?") risk, \(approval.string("customer_id") ?? "?") \(approval.string("recommendation_id") ?? "?")")
        switch approval.string("status") {
        case "approved":
            let plan = approval.string("plan_id").map { "; plan \(shown($0))" } ?? ""
            return "\(paint("approved", true)) \(id) (\(what))\(plan)"
        case "rejected":
            return "\(paint("rejected", false)) \(id) (\(what)): \(shown(approval.string("rejection_reason") ?? ""))"
        case "pending":
            let votes = (approval["approvers"] as? [Any])?.count ?? 0
            let needed = approval.int("required_approvals") ?? 1
            return "vote recorded on \(id) (\(what)): \(votes) of \(needed) approvals; waiting for another approver"
        default:
            return "\(verb) \(id): \(shown(approval.string("status") ?? "?"))"
        }
    }
}
