import Coordination
import Foundation
import RedisClient

/// Hands what a worker left in flight back to its queue, counting each message's failed
/// deliveries (PROTOCOL.md section 6): a message is identified by its queue and the SHA-256
/// of its bytes, and one handed back `--max-deliveries` times goes to `coord:dead` as
/// `poison` (with `attempts`) instead of another delivery. Counting happens only here, on
/// the path of failures, so finished messages cost nothing; counters expire after a day.
enum HandBack {
    static let counterTTL = 86_400

    /// Returns how many messages went back to `queue` (poison ones not included).
    @discardableResult
    static func run(inflight: String, queue: String, context: DaemonContext,
                    connection: RedisConnection) throws(RedisError) -> Int {
        let keys = context.keys
        // A message too large to read is never read here either: back it goes, uncounted (it
        // is refused unread, so it cannot have made a daemon fail).
        if inflight.hasSuffix(Keys.oversizedSuffix) {
            return Int(try connection.run(Scripts.requeue, keys: [inflight, queue], args: []).integer ?? 0)
        }
        let messages = (try connection.send("LRANGE", inflight, 0, -1).array ?? []).compactMap(\.bytes)
        if !messages.isEmpty {
            var counts: [RedisCommand] = []
            var counterKeys: [String] = []
            for raw in messages {
                let key = keys.deliveries(queue: queue, message: raw)
                counterKeys.append(key)
                counts.append(RedisCommand("INCR", key))
                counts.append(RedisCommand("EXPIRE", key, counterTTL))
            }
            let replies = try connection.pipeline(counts)
            let now = try RedisClock.now(connection)
            var poison: [Commit] = []
            for (offset, raw) in messages.enumerated() {
                let attempts = Int(replies[offset * 2].integer ?? 0)
                guard attempts >= context.configuration.maxDeliveries else { continue }
                var commit = Commit(acknowledging: raw, in: inflight)
                commit.deadLetter(letter(raw, queue: queue, attempts: attempts, rawMax: context.configuration.deadLetterRawMax, at: now),
                                  to: keys.dead, max: context.configuration.deadLetterMax)
                commit.write("DEL", counterKeys[offset])
                poison.append(commit)
            }
            if !poison.isEmpty {
                _ = try Commit.apply(poison, on: connection)
                context.counters.add(deadLettered: poison.count)
                context.metrics.deadLettered(code: ErrorCode.poison.rawValue, count: poison.count)
                context.logger.error("poison messages dead-lettered", metadata: ["queue": "\(queue)", "count": "\(poison.count)"])
            }
        }
        return Int(try connection.run(Scripts.requeue, keys: [inflight, queue], args: []).integer ?? 0)
    }

    /// The `poison` dead letter: the section 6 shape plus `attempts`, the raw bytes capped.
    static func letter(_ raw: [UInt8], queue: String, attempts: Int, rawMax: Int, at: Date) -> [UInt8] {
        WireMessages.deadLetter(queue: queue, raw: raw,
                                failure: Refusal(.poison, "delivered \(attempts) times without being finished (--max-deliveries)"),
                                at: at, rawMax: rawMax, attempts: attempts)
    }
}
