import CoordinatorDaemon
import Foundation
import RedisClient

/// Pending approvals as `coordinatord approvals` lists them: unexpired only (as
/// `list_approvals` answers; the sweeper expires the rest within seconds), soonest expiry
/// first, at most `limit` of them read.
public struct PendingApprovals {
    /// How many unexpired approvals are pending in all.
    public var total: Int
    /// The first `limit`, soonest expiry first.
    public var approvals: [[String: Any]]
    public var now: Date

    public static func read(_ connection: RedisConnection, keys: Keys, customer: String?, limit: Int) throws -> PendingApprovals {
        let now = redisNow(connection)
        let index = customer.map { keys.pendingApprovals(customer: $0) } ?? keys.pendingApprovals
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        let total = Int(try connection.send("ZCOUNT", index, nowMs + 1, "+inf").integer ?? 0)
        let ids = (try connection.send("ZRANGEBYSCORE", index, nowMs + 1, "+inf", "LIMIT", 0, limit).array ?? []).compactMap(\.string)
        let stored = try ids.isEmpty ? [] : connection.pipeline(ids.map { RedisCommand("GET", keys.approval($0)) })
        let approvals = stored.compactMap { reply in reply.bytes.flatMap(jsonObject) }
            .filter { $0.string("status") == "pending" }
        return PendingApprovals(total: total, approvals: approvals, now: now)
    }

    /// "high", or "high 1/2" for an approval that needs more than one approver.
    public static func riskText(_ approval: [String: Any]) -> String {
        var risk = approval.string("risk_level") ?? "?"
        let required = approval.int("required_approvals") ?? 1
        if required > 1 { risk += " \((approval["approvers"] as? [Any])?.count ?? 0)/\(required)" }
        return risk
    }
}

/// One stored approval or plan, by its whole id.
public enum StoredRecord {
    public static func approval(_ id: String, keys: Keys, connection: RedisConnection) throws -> [String: Any]? {
        jsonObject(try connection.send("GET", keys.approval(id)).bytes)
    }

    public static func plan(_ id: String, keys: Keys, connection: RedisConnection) throws -> [String: Any]? {
        jsonObject(try connection.send("GET", keys.plan(id)).bytes)
    }

    /// A recommendation's record (`{"recommendation", "execute_now", "approval_id", "plan_id", …}`):
    /// in the customer's active hash while it is active, then kept for `--retention`.
    public static func recommendation(customer: String, id: String, keys: Keys, connection: RedisConnection) throws -> [String: Any]? {
        let replies = try connection.pipeline([activeRecommendation(customer: customer, id: id, keys: keys),
                                               RedisCommand("GET", keys.recommendation(customer: customer, id: id))])
        return jsonObject(replies[0].bytes) ?? jsonObject(replies[1].bytes)
    }

    /// The read of an active recommendation's record (pending approval, approved, executing).
    public static func activeRecommendation(customer: String, id: String, keys: Keys) -> RedisCommand {
        RedisCommand("HGET", keys.active(customer: customer), id)
    }
}
