import RedisClient

/// A set of writes applied atomically by `Scripts.commit`, only if its guards still hold and
/// its message is still this worker's. Commits go to Redis in batches (`apply`).
struct Commit {
    enum Guard {
        /// The key holds exactly this value.
        case equals([UInt8])
        case absent
        /// A counter key (absent meaning 0) holds this number.
        case counter(Int)
    }

    enum Result: Equatable {
        case applied
        /// The message was handed to another worker meanwhile: its effects are theirs to write.
        case messageGone
        /// A guard failed: what was read is stale, compute again.
        case stale
    }

    private var inflight: String
    private var message: [UInt8]
    private var guardKeys: [[UInt8]] = []
    private var guardValues: [[UInt8]] = []
    private var ops: [[UInt8]] = []

    /// A commit that also acknowledges `message` in the in-flight list `inflight`.
    init(acknowledging message: [UInt8], in inflight: String) {
        self.inflight = inflight
        self.message = message
    }

    /// A commit tied to no message (sweeper, executor).
    init() {
        self.inflight = ""
        self.message = []
    }

    var isEmpty: Bool { ops.isEmpty }
    var isGuardless: Bool { guardKeys.isEmpty }

    mutating func require(_ key: String, _ condition: Guard) {
        guardKeys.append(Array(key.utf8))
        switch condition {
        case .equals(let value): guardValues.append([UInt8(ascii: "=")] + value)
        case .absent: guardValues.append([UInt8(ascii: "!")])
        case .counter(let n): guardValues.append(Array("#\(n)".utf8))
        }
    }

    mutating func write(_ command: String, _ args: any RedisArgument...) {
        write(command, arguments: args)
    }

    mutating func write(_ command: String, arguments args: [any RedisArgument]) {
        ops.append(Array(String(args.count + 1).utf8))
        ops.append(Array(command.utf8))
        for arg in args { ops.append(arg.redisBytes) }
    }

    /// Moves every member of the set `waiters` onto the list `ready`, and deletes the set.
    mutating func wake(_ waiters: String, onto ready: String) {
        write("WAKE", waiters, ready)
    }

    /// Publishes `json` on `channel` and appends it to the capped `stream` (field `type`, then
    /// `event`), the payload passed once.
    mutating func event(_ json: [UInt8], type: String, channel: String, stream: String, maxLength: Int) {
        write("EVENT", channel, stream, maxLength, type, json)
    }

    /// Pushes `reply` onto `list` (when there is one) with a fresh TTL, and stores it under
    /// `dedupe` (when given) for idempotent re-delivery, the payload passed once.
    mutating func reply(_ reply: [UInt8], to list: String?, ttl: Int, dedupe: (key: String, ttl: Int)? = nil) {
        guard list != nil || dedupe != nil else { return }
        if let dedupe {
            write("REPLY", list ?? "", ttl, reply, dedupe.key, dedupe.ttl)
        } else {
            write("REPLY", list ?? "", ttl, reply)
        }
    }

    /// Commits per script call: a batch's worth, while keeping each call (which blocks Redis
    /// while it runs) short.
    static let perCall = 128

    /// Applies `commits` in one round trip (one script call per `perCall` of them) and returns
    /// each one's result, in order. Throws when Redis is unreachable or answers with an error.
    static func apply(_ commits: [Commit], on connection: RedisConnection) throws(RedisError) -> [Result] {
        if commits.isEmpty { return [] }
        var calls: [RedisCommand] = []
        var start = 0
        while start < commits.count {
            let end = min(start + perCall, commits.count)
            calls.append(command(for: commits[start..<end]))
            start = end
        }
        var results: [Result] = []
        results.reserveCapacity(commits.count)
        for (index, reply) in try connection.pipeline(calls).enumerated() {
            let expected = min(perCall, commits.count - index * perCall)
            switch reply {
            case .array(let items) where items.count == expected:
                for item in items {
                    switch item {
                    case .integer(1): results.append(.applied)
                    case .integer(0): results.append(.messageGone)
                    case .integer: results.append(.stale)
                    default: throw RedisError.protocolError("commit script answered \(item)")
                    }
                }
            case .error(let message): throw RedisError.server(message)
            default: throw RedisError.protocolError("commit script answered \(reply)")
            }
        }
        return results
    }

    private static func command(for commits: ArraySlice<Commit>) -> RedisCommand {
        var all: [[UInt8]] = [Array("EVALSHA".utf8), Array(Scripts.commit.sha1.utf8), Array("0".utf8)]
        all.reserveCapacity(3 + commits.reduce(0) { $0 + 4 + 2 * $1.guardKeys.count + $1.ops.count })
        for commit in commits {
            all.append(Array(commit.inflight.utf8))
            all.append(commit.message)
            all.append(Array(String(commit.guardKeys.count).utf8))
            for (key, value) in zip(commit.guardKeys, commit.guardValues) {
                all.append(key)
                all.append(value)
            }
            all.append(Array(String(commit.ops.count).utf8))
            all.append(contentsOf: commit.ops)
        }
        return RedisCommand(arguments: all)
    }
}
