import Coordination
import Foundation
import RedisClient

/// What the sweeps share: the entries due in a time index and the active records of their
/// recommendations.
enum Sweep {
    /// Up to `limit` members of the sorted set `index` whose score (ms) is at most `untilMs`.
    static func due(_ index: String, untilMs: Int, limit: Int, _ connection: RedisConnection) throws(RedisError) -> [String] {
        let due = try connection.send("ZRANGEBYSCORE", index, "-inf", untilMs, "LIMIT", 0, limit)
        return (due.array ?? []).compactMap(\.string)
    }

    /// The active record of each recommendation (customer, id), in order; nil where none is.
    static func activeRecords(_ recommendations: [(customer: String, id: String)], keys: Keys,
                              _ connection: RedisConnection) throws(RedisError) -> [RecommendationRecord?] {
        guard !recommendations.isEmpty else { return [] }
        let replies = try connection.pipeline(recommendations.map { RedisCommand("HGET", keys.active(customer: $0.customer), $0.id) })
        return replies.map(\.record)
    }
}
