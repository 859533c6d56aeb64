import CoordinatorDaemon
import Crypto
import Foundation
import RedisClient

/// One entry of the dead-letter list, `{"queue","raw"|"raw_base64","error":{"code","message"},"at"}`
/// (PROTOCOL.md section 6), as read by people.
public struct DeadLetter {
    public var entry: [String: Any]
    public var queueName: String
    public var code: String
    public var message: String
    public var truncated: Bool
    public var keptBytes: Int
    /// The message's full length.
    public var size: Int?

    public init(_ entry: [String: Any], keys: Keys) {
        self.entry = entry
        let queue = entry.string("queue") ?? "?"
        queueName = queue.hasPrefix(keys.prefix + ":") ? String(queue.dropFirst(keys.prefix.count + 1)) : queue
        let error = entry["error"] as? [String: Any] ?? [:]
        code = error.string("code") ?? "?"
        message = error.string("message") ?? ""
        truncated = entry["truncated"] as? Bool ?? false
        let raw = entry.string("raw").map { $0.utf8.count } ?? entry.string("raw_base64").flatMap { Data(base64Encoded: $0)?.count }
        keptBytes = raw ?? 0
        size = entry.int("raw_bytes") ?? raw
    }

    /// The message itself, as a person may read it: `raw` escaped, or `raw_base64` decoded and
    /// escaped (its bytes that are not UTF-8 as `\xNN`); with a note of which it was.
    public var shownRaw: (note: String, text: String)? {
        if let raw = entry.string("raw") { return ("raw", DisplayText.escaped(raw)) }
        guard let base64 = entry.string("raw_base64") else { return nil }
        guard let data = Data(base64Encoded: base64) else {
            return ("raw_base64 (not valid base64)", DisplayText.escaped(base64))
        }
        return ("raw (from raw_base64: not UTF-8; such bytes shown as \\xNN)", DisplayText.escaped(bytes: Array(data)))
    }

    /// The queue and exact bytes to put back, or why not.
    public static func requeueable(_ bytes: [UInt8], keys: Keys) throws -> (queue: String, raw: [UInt8]) {
        guard let entry = jsonObject(bytes) else { throw OperationFailure("the entry is not JSON") }
        let letter = DeadLetter(entry, keys: keys)
        if letter.truncated {
            throw OperationFailure("it is truncated: only \(letter.keptBytes) of its \(letter.size.map(String.init) ?? "?") bytes were kept (--dead-letter-raw-max), so the message cannot be restored")
        }
        // Only the daemon's own input queues: a forged entry must not steer bytes anywhere else.
        let queues = [keys.requests, keys.approvals, keys.stepResults]
        guard let queue = entry.string("queue"), queues.contains(queue) else {
            throw OperationFailure("its queue \"\(entry.string("queue") ?? "")\" is not one of \(queues.joined(separator: ", "))")
        }
        if let raw = entry.string("raw") { return (queue, Array(raw.utf8)) }
        if let base64 = entry.string("raw_base64") {
            guard let data = Data(base64Encoded: base64) else { throw OperationFailure("its raw_base64 is not valid base64") }
            return (queue, Array(data))
        }
        throw OperationFailure("it holds neither raw nor raw_base64")
    }

    /// An entry's identity for a confirmation: indexes shift as entries come and go, so an
    /// action confirmed for entry N checks that N still holds the bytes the person saw.
    public static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// The dead-letter list's reads and actions (`coordinatord dead …` and the console).
public enum DeadLetters {
    /// The newest `limit` entries, oldest first, with their indexes.
    public static func newest(_ connection: RedisConnection, keys: Keys, limit: Int) throws -> (total: Int, first: Int, entries: [[UInt8]]) {
        let total = Int(try connection.send("LLEN", keys.dead).integer ?? 0)
        let first = max(0, total - limit)
        let entries = (try connection.send("LRANGE", keys.dead, first, -1).array ?? []).map { $0.bytes ?? [] }
        return (total, first, entries)
    }

    /// Atomically: the entry leaves the dead list and its bytes go back on the queue, or nothing happens.
    static let requeueScript = RedisScript("""
        if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
          redis.call('LPUSH', KEYS[2], ARGV[2])
          return 1
        end
        return 0
        """)

    static let purgeScript = RedisScript("""
        local n = redis.call('LLEN', KEYS[1])
        redis.call('DEL', KEYS[1])
        return n
        """)

    /// Puts one entry's exact bytes back on its queue; returns the queue and the byte count.
    public static func requeue(_ bytes: [UInt8], keys: Keys, connection: RedisConnection) throws -> (queue: String, count: Int) {
        let (queue, raw) = try DeadLetter.requeueable(bytes, keys: keys)
        guard try connection.run(requeueScript, keys: [keys.dead, queue], args: [bytes, raw]).integer == 1 else {
            throw OperationFailure("it left the dead list meanwhile (requeued or trimmed by someone else)")
        }
        return (queue, raw.count)
    }

    /// Deletes every dead letter; returns how many there were.
    public static func purge(keys: Keys, connection: RedisConnection) throws -> Int {
        Int(try connection.run(purgeScript, keys: [keys.dead], args: []).integer ?? 0)
    }
}
