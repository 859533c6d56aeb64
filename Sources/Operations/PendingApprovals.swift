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

    /// On a cluster each partition's index is read (one round trip per master), and the
    /// soonest `limit` of all of them kept; a customer's approvals are in its partition only.
    public static func read(_ redis: any StateRedis, layout: StateLayout, customer: String?, limit: Int) throws -> PendingApprovals {
        let now = redis.clock()
        let indexes = customer.map { [layout.of(customer: $0).pendingApprovals(customer: $0)] } ?? layout.places.map(\.pendingApprovals)
        let nowMs = Int(now.timeIntervalSince1970 * 1000)
        var commands: [RedisCommand] = []
        for index in indexes {
            commands += [RedisCommand("ZCOUNT", index, nowMs + 1, "+inf"),
                         RedisCommand("ZRANGEBYSCORE", index, nowMs + 1, "+inf", "WITHSCORES", "LIMIT", 0, limit)]
        }
        let replies = try redis.calls(commands)
        var total = 0
        var soonest: [(id: String, expiry: Double)] = []
        for i in indexes.indices {
            if case .error(let message) = replies[2 * i + 1] { throw RedisError.server(message) }
            total += Int(replies[2 * i].integer ?? 0)
            let fields = (replies[2 * i + 1].array ?? []).compactMap(\.string)
            soonest += stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], Double(fields[$0 + 1]) ?? 0) }
        }
        // Stable: on one Redis, ZRANGEBYSCORE's own order.
        let ids = soonest.enumerated().sorted { ($0.element.expiry, $0.offset) < ($1.element.expiry, $1.offset) }
            .prefix(limit).map(\.element.id)
        let stored = try StoredRecord.approvals(ids, layout: layout, redis: redis)
        let approvals = stored.compactMap { $0 }.filter { $0.string("status") == "pending" }
        return PendingApprovals(total: total, approvals: approvals, now: now)
    }

    /// Every pending approval's id, unexpired or not (what an id prefix is matched against).
    public static func ids(_ redis: any StateRedis, layout: StateLayout) throws -> [String] {
        try redis.everyPlace(layout) { RedisCommand("ZRANGE", $0.pendingApprovals, 0, -1) }.flatMap { ($0.array ?? []).compactMap(\.string) }
    }

    /// "high", or "high 1/2" for an approval that needs more than one approver.
    public static func riskText(_ approval: [String: Any]) -> String {
        var risk = approval.string("risk_level") ?? "?"
        let required = approval.int("required_approvals") ?? 1
        if required > 1 { risk += " \((approval["approvers"] as? [Any])?.count ?? 0)/\(required)" }
        return risk
    }
}

/// One stored approval or plan, by its whole id, wherever it is kept (`StateLayout`).
public enum StoredRecord {
    public static func approval(_ id: String, layout: StateLayout, redis: any StateRedis) throws -> [String: Any]? {
        try approvals([id], layout: layout, redis: redis)[0]
    }

    /// Approvals by id, in one round trip (per master); nil for one not found.
    public static func approvals(_ ids: [String], layout: StateLayout, redis: any StateRedis) throws -> [[String: Any]?] {
        try records(ids, layout: layout, redis: redis) { $0.approval($1) }
    }

    public static func plan(_ id: String, layout: StateLayout, redis: any StateRedis) throws -> [String: Any]? {
        try plans([id], layout: layout, redis: redis)[0]
    }

    /// Plans by id, in one round trip (per master); nil for one not found.
    public static func plans(_ ids: [String], layout: StateLayout, redis: any StateRedis) throws -> [[String: Any]?] {
        try records(ids, layout: layout, redis: redis) { $0.plan($1) }
    }

    private static func records(_ ids: [String], layout: StateLayout, redis: any StateRedis,
                                key: (Keys, String) -> String) throws -> [[String: Any]?] {
        let routed = ids.map { id in layout.of(id: id).map { key($0, id) } }
        let found = routed.compactMap { $0 }
        let replies = try found.isEmpty ? [] : redis.calls(found.map { RedisCommand("GET", $0) })
        var next = replies.makeIterator()
        return routed.map { $0 == nil ? nil : jsonObject(next.next()?.bytes) }
    }

    /// A recommendation's record (`{"recommendation", "execute_now", "approval_id", "plan_id", …}`):
    /// in the customer's active hash while it is active, then kept for `--retention`.
    public static func recommendation(customer: String, id: String, layout: StateLayout, redis: any StateRedis) throws -> [String: Any]? {
        let keys = layout.of(customer: customer)
        let replies = try redis.calls([activeRecommendation(customer: customer, id: id, layout: layout),
                                       RedisCommand("GET", keys.recommendation(customer: customer, id: id))])
        return jsonObject(replies[0].bytes) ?? jsonObject(replies[1].bytes)
    }

    /// The read of an active recommendation's record (pending approval, approved, executing).
    public static func activeRecommendation(customer: String, id: String, layout: StateLayout) -> RedisCommand {
        RedisCommand("HGET", layout.of(customer: customer).active(customer: customer), id)
    }
}
