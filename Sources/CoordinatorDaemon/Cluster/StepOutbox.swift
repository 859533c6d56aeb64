import Foundation
import RedisClient

/// Step dispatch on a cluster (PROTOCOL.md sections 5 and 11). An agent's step list,
/// `coord:agent:<id>:steps`, is in a slot of its own, so the commit that starts a step (or
/// withdraws one past its deadline) cannot write it: it writes an entry into the partition's
/// step outbox instead, and the partition's `OutboxMover` for steps moves it to the agent's
/// list. Each delivery sets a mark, keyed by the attempt's token in the list's slot, in the
/// same script: a delivery repeated after a crash (between the push and the entry's removal)
/// adds nothing while the mark lives; if it ever does land twice, it is byte for byte the
/// same message with the same `attempt`.
enum StepOutbox {
    /// `+` (dispatch) or `-` (withdraw), the agent's list, newline, the attempt's token,
    /// newline, the step message.
    static func entry(_ attempt: StepAttempt, withdraw: Bool) -> [UInt8] {
        Array(((withdraw ? "-" : "+") + attempt.list + "\n" + attempt.token + "\n").utf8) + attempt.message
    }

    struct Entry: Equatable {
        var withdraw: Bool
        var list: String
        var token: String
        var message: [UInt8]
    }

    static func parse(_ entry: [UInt8]) -> Entry? {
        guard let op = entry.first, op == UInt8(ascii: "+") || op == UInt8(ascii: "-"),
              let first = entry.firstIndex(of: UInt8(ascii: "\n")), first > 1,
              let second = entry[(first + 1)...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        return Entry(withdraw: op == UInt8(ascii: "-"),
                     list: String(decoding: entry[1..<first], as: UTF8.self),
                     token: String(decoding: entry[(first + 1)..<second], as: UTF8.self),
                     message: Array(entry[(second + 1)...]))
    }

    /// How long a delivery's mark lives: past any step's deadline, after which agents refuse
    /// the step anyway.
    static func markTTLMs(stepTimeout: TimeInterval) -> Int {
        Int(min(stepTimeout, 86_400 * 30) * 1000) + 3_600_000
    }

    /// Delivers or withdraws a step. KEYS[1] the agent's list, KEYS[2] (optional) the mark.
    /// ARGV[1] the step message, ARGV[2] the mark's TTL (ms), ARGV[3] '1' deliver, '0'
    /// withdraw. A delivery pushes only when the mark was not set yet (returns 1, else 0); a
    /// withdrawal sets the mark too (a late repeat of the delivery then adds nothing) and
    /// removes the message if no agent took it yet (returns how many it removed).
    static let script = RedisScript("""
    local fresh = true
    if #KEYS > 1 then
      fresh = redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2])
    end
    if ARGV[3] == '1' then
      if not fresh then return 0 end
      redis.call('LPUSH', KEYS[1], ARGV[1])
      return 1
    end
    return redis.call('LREM', KEYS[1], 0, ARGV[1])
    """)

    static func command(_ entry: Entry, keys: Keys, markTTLMs: Int) -> RedisCommand {
        let mark = keys.stepSent(list: entry.list, token: entry.token)
        return script.command(keys: [entry.list] + (mark.map { [$0] } ?? []),
                              args: [entry.message, markTTLMs, entry.withdraw ? "0" : "1"])
    }
}
