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
        queueName = keys.queueName(queue)
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

/// Where a dead letter is: its list (`<prefix>:dead`, or on a cluster a partition's
/// `<prefix>:{p<k>}:dead`) and its index there (LINDEX, the oldest 0). Written `N` for the
/// first, `k:N` for partition k's.
public struct DeadLetterAddress: Hashable, Sendable, CustomStringConvertible {
    /// The partition whose list it is in; nil for `<prefix>:dead`.
    public var partition: Int?
    public var index: Int

    public init(partition: Int?, index: Int) {
        self.partition = partition
        self.index = index
    }

    /// `N` or `k:N`, k a partition of `layout`; nil for anything else.
    public init?(_ text: String, layout: StateLayout) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 9 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let index = Int(parts.last!) else { return nil }
        if parts.count == 2 {
            guard let count = layout.partitions?.count, let k = Int(parts[0]), k < count else { return nil }
            partition = k
        }
        self.index = index
    }

    public var description: String { partition.map { "\($0):\(index)" } ?? "\(index)" }

    /// The keys its list and its queues are under.
    public func keys(_ layout: StateLayout) -> Keys { partition.map { layout.keys.partition($0) } ?? layout.keys }
    public func list(_ layout: StateLayout) -> String { keys(layout).dead }
}

/// The dead-letter lists' reads and actions (`coordinatord dead …` and the console): one list
/// on one Redis; on a cluster every partition's and the global `<prefix>:dead`, merged.
public enum DeadLetters {
    /// The lists: `<prefix>:dead`; on a cluster each partition's, then `<prefix>:dead`.
    public static func lists(_ layout: StateLayout) -> [(partition: Int?, keys: Keys)] {
        guard layout.isPartitioned else { return [(nil, layout.keys)] }
        return layout.places.enumerated().map { ($0.offset, $0.element) } + [(nil, layout.keys)]
    }

    /// The newest `limit` entries of all lists, oldest first (by their `at` when there are
    /// several lists), with their addresses; `total` counts every entry of every list.
    public static func newest(_ redis: any StateRedis, layout: StateLayout, limit: Int) throws -> (total: Int, entries: [(address: DeadLetterAddress, bytes: [UInt8])]) {
        let lists = lists(layout)
        let replies = try redis.calls(lists.flatMap { [RedisCommand("LLEN", $0.keys.dead), RedisCommand("LRANGE", $0.keys.dead, -limit, -1)] })
        var total = 0
        var entries: [(address: DeadLetterAddress, bytes: [UInt8], at: String)] = []
        for (i, list) in lists.enumerated() {
            if case .error(let message) = replies[2 * i + 1] { throw RedisError.server(message) }
            let length = Int(replies[2 * i].integer ?? 0)
            let items = (replies[2 * i + 1].array ?? []).map { $0.bytes ?? [] }
            total += length
            let first = max(0, length - items.count)
            for (offset, bytes) in items.enumerated() {
                let at = lists.count > 1 ? jsonObject(bytes)?.string("at") ?? "" : ""
                entries.append((DeadLetterAddress(partition: list.partition, index: first + offset), bytes, at))
            }
        }
        if lists.count > 1 {
            // RFC 3339 with milliseconds, UTC: sorts as text; a list's own order breaks ties.
            entries = entries.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        }
        return (total, entries.suffix(limit).map { ($0.address, $0.bytes) })
    }

    /// One entry's bytes, nil when its list has no such index.
    public static func entry(_ address: DeadLetterAddress, layout: StateLayout, redis: any StateRedis) throws -> [UInt8]? {
        try redis.call(RedisCommand("LINDEX", address.list(layout), address.index)).bytes
    }

    /// How many entries all lists hold.
    public static func count(_ redis: any StateRedis, layout: StateLayout) throws -> Int {
        try redis.calls(lists(layout).map { RedisCommand("LLEN", $0.keys.dead) }).reduce(0) { $0 + Int($1.integer ?? 0) }
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

    /// Puts one entry's exact bytes back on its queue (of the entry's partition on a cluster);
    /// returns the queue and the byte count.
    public static func requeue(_ bytes: [UInt8], at address: DeadLetterAddress, layout: StateLayout,
                               redis: any StateRedis) throws -> (queue: String, count: Int) {
        let keys = address.keys(layout)
        let (queue, raw) = try DeadLetter.requeueable(bytes, keys: keys)
        if layout.isPartitioned, address.partition == nil {
            // The entry queues and the global list are in different slots: no atomic move.
            throw OperationFailure("on a Redis Cluster an entry of \(keys.dead) cannot be moved back atomically; push its bytes onto \(queue) by hand and remove it")
        }
        guard try redis.script(requeueScript, keys: [keys.dead, queue], args: [bytes, raw]).integer == 1 else {
            throw OperationFailure("it left the dead list meanwhile (requeued or trimmed by someone else)")
        }
        return (queue, raw.count)
    }

    /// Deletes every dead letter of every list; returns how many there were.
    public static func purge(layout: StateLayout, redis: any StateRedis) throws -> Int {
        var purged = 0
        for list in lists(layout) {
            purged += Int(try redis.script(purgeScript, keys: [list.keys.dead], args: []).integer ?? 0)
        }
        return purged
    }
}
