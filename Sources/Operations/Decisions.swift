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
    /// `replyTo` (deleted afterwards). Nil when none came.
    public static func push(_ message: [UInt8], replyTo: String, keys: Keys, connection: RedisConnection,
                            timeout: Double) throws -> [UInt8]? {
        _ = try connection.send("LPUSH", keys.approvals, message)
        defer { _ = try? connection.send("DEL", replyTo) }
        return try connection.blockingPop([replyTo], timeout: timeout)?.value
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
}
