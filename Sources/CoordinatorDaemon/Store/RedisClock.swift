import Foundation
import RedisClient

/// One clock for every daemon (PROTOCOL.md: where daemons compare times, they use Redis's):
/// Redis `TIME`, read in the same round trip as a batch's reads, decides expiry, deadlines,
/// leases and retention.
enum RedisClock {
    static let command = RedisCommand("TIME")

    /// The time in a `TIME` reply; this machine's clock when the reply is not one.
    static func date(from reply: RedisReply) -> Date {
        guard let parts = reply.array, parts.count == 2,
              let seconds = parts[0].string.flatMap(Double.init), let micros = parts[1].string.flatMap(Double.init) else {
            return Date()
        }
        return Date(timeIntervalSince1970: seconds + micros / 1_000_000)
    }

    /// Redis's time now, in one round trip.
    static func now(_ connection: RedisConnection) throws(RedisError) -> Date {
        date(from: try connection.pipeline([command])[0])
    }
}
