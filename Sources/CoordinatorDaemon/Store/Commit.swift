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
        /// The key is absent or holds exactly this value (a lock that is free or ours).
        case absentOrEquals([UInt8])
        /// The key is a hash in which `field` exists (or does not).
        case hashField(String, exists: Bool)
        /// The key is a hash whose `field` holds this value (nil: the field is absent).
        case hashFieldValue(String, [UInt8]?)
    }

    enum Result: Equatable {
        case applied
        /// Applied, but its reply could not be pushed (Redis's error): the caller dead-letters
        /// the message as `reply_undeliverable`.
        case appliedReplyUndeliverable(String)
        /// The message was handed to another worker meanwhile: its effects are theirs to write.
        case messageGone
        /// A guard failed: what was read is stale, compute again.
        case stale
        /// The customer is held by a staged commit (`coordinate.lua`): roll its journal
        /// forward (`Store.rollForward`), then compute again.
        case journaled
        /// A write failed with this Redis error: the commit's message is back in flight and
        /// this failure is that message's alone.
        case failed(String)
    }

    private var inflight: String
    private var message: [UInt8]
    private var guardKeys: [[UInt8]] = []
    private var guardValues: [[UInt8]] = []
    private var ops: [[UInt8]] = []
    /// A change made by a script of its own (`Scripts.coordinate`), in one call.
    private var call: RedisCommand?

    /// A commit that also acknowledges `message` in the in-flight list `inflight`.
    init(acknowledging message: [UInt8], in inflight: String) {
        self.inflight = inflight
        self.message = message
    }

    /// A commit that acknowledges the one message held in the oversized list `list` by its
    /// place: its bytes were never read whole, so they are not sent back.
    init(acknowledgingHeldIn list: String) {
        self.inflight = "!" + list
        self.message = []
    }

    /// A commit tied to no message (sweeper, executor).
    init() {
        self.inflight = ""
        self.message = []
    }

    /// A change made by one call of a script of its own, which returns a result as the
    /// generic commit does for each of its commits.
    init(call: RedisCommand) {
        self.inflight = ""
        self.message = []
        self.call = call
    }

    var isEmpty: Bool { call == nil && ops.isEmpty }
    var argumentCount: Int { 4 + 2 * guardKeys.count + ops.count }
    var isGuardless: Bool { guardKeys.isEmpty }

    mutating func require(_ key: String, _ condition: Guard) {
        guardKeys.append(Array(key.utf8))
        switch condition {
        case .equals(let value): guardValues.append([UInt8(ascii: "=")] + value)
        case .absent: guardValues.append([UInt8(ascii: "!")])
        case .counter(let n): guardValues.append(Array("#\(n)".utf8))
        case .absentOrEquals(let value): guardValues.append([UInt8(ascii: "~")] + value)
        case .hashField(let field, let exists): guardValues.append(Array("h\(exists ? 1 : 0)\(field)".utf8))
        case .hashFieldValue(let field, let value): guardValues.append(Array("f\(field)\n".utf8) + (value ?? []))
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

    /// Runs `command key <items…>` in chunks (Lua's `unpack` fails past ~8,000 arguments).
    mutating func writeChunked(_ command: String, _ key: String, _ items: [any RedisArgument], per chunk: Int = 1000) {
        var start = 0
        while start < items.count {
            let end = min(start + chunk, items.count)
            write(command, arguments: [key] + Array(items[start..<end]))
            start = end
        }
    }

    /// How a reply list is kept: its newest `max` replies, and whether every reply list gets
    /// the cap and the TTL (`always`, under a reply prefix) or only one the push created or
    /// that already has a TTL (PROTOCOL.md 2.1).
    struct ReplyList {
        var max: Int
        var always: Bool
    }

    /// Pushes `reply` onto `list` (when there is one; capped, with a fresh TTL), and stores
    /// "list\nreply" under `dedupe` (when given) for idempotent re-delivery, the payload passed
    /// once. A push that fails becomes a `reply_undeliverable` dead letter, nothing else.
    mutating func reply(_ reply: [UInt8], to list: String?, ttl: Int, dedupe: (key: String, ttl: Int)? = nil,
                        keeping kept: ReplyList) {
        guard list != nil || dedupe != nil else { return }
        write("REPLY", list ?? "", ttl, reply, dedupe?.key ?? "", dedupe?.ttl ?? 0, kept.max, kept.always ? "1" : "0")
    }

    /// Appends a dead letter to `list`, keeping its newest `max` entries.
    mutating func deadLetter(_ json: [UInt8], to list: String, max: Int) {
        write("DEAD", list, max, json)
    }

    /// Every key this commit touches: its in-flight list, its guards' keys and its writes'
    /// (not a reply list, which on a cluster is never written in a commit: PROTOCOL.md 11).
    var touchedKeys: [[UInt8]] {
        var keys: [[UInt8]] = []
        if !inflight.isEmpty { keys.append(Array(inflight.utf8.drop { $0 == UInt8(ascii: "!") })) }
        keys.append(contentsOf: guardKeys)
        var q = 0
        while q + 1 < ops.count {
            let n = Int(String(decoding: ops[q], as: UTF8.self)) ?? 1
            let args = ops[(q + 2)..<min(ops.count, q + 1 + n)]
            func arg(_ i: Int) -> [UInt8]? { args.count > i ? args[args.startIndex + i] : nil }
            switch String(decoding: ops[q + 1], as: UTF8.self) {
            case "EVENT": keys.append(contentsOf: [arg(1)].compactMap { $0 })
            case "REPLY": keys.append(contentsOf: [arg(3)].compactMap { $0 }.filter { !$0.isEmpty })
            case "UNINDEX": keys.append(contentsOf: [arg(0), arg(2)].compactMap { $0 })
            case "WAKE": keys.append(contentsOf: [arg(0), arg(1)].compactMap { $0 })
            case "PUBLISH": break
            case "DEL": keys.append(contentsOf: args)
            default: keys.append(contentsOf: [arg(0)].compactMap { $0 })
            }
            q += n + 1
        }
        return keys
    }

    /// Commits per script call: a batch's worth, while keeping each call (which blocks Redis
    /// while it runs) short.
    static let perCall = 128
    /// Arguments per script call, past which the next commit goes into another call (a batch
    /// of large commits in one call would hold Redis for seconds, and others get BUSY).
    static let argumentsPerCall = 20_000

    /// Applies `commits` in one round trip (script calls of up to `perCall` commits and about
    /// `argumentsPerCall` arguments) and returns each one's result, in order. Throws when
    /// Redis is unreachable or the script itself fails; a failed write is that commit's
    /// `.failed` result alone.
    static func apply(_ commits: [Commit], on connection: RedisConnection,
                      metrics: DaemonMetrics? = nil) throws(RedisError) -> [Result] {
        if commits.isEmpty { return [] }
        var calls: [RedisCommand] = []
        var sizes: [Int] = []
        var start = 0
        while start < commits.count {
            if let call = commits[start].call {
                calls.append(call)
                sizes.append(0)  // one result, not an array
                start += 1
                continue
            }
            var end = start
            var arguments = 0
            while end < commits.count, commits[end].call == nil, end - start < perCall,
                  end == start || arguments + commits[end].argumentCount <= argumentsPerCall {
                arguments += commits[end].argumentCount
                end += 1
            }
            calls.append(command(for: commits[start..<end], declaring: connection.configuration.isCluster))
            sizes.append(end - start)
            start = end
        }
        var results: [Result] = []
        results.reserveCapacity(commits.count)
        for (index, reply) in try connection.pipeline(calls).enumerated() {
            let expected = sizes[index]
            switch reply {
            case .error(let message): throw RedisError.server(message)
            case .array(let items) where expected > 0 && items.count == expected:
                for item in items { results.append(try result(of: item, metrics: metrics)) }
            default:
                guard expected == 0 else { throw RedisError.protocolError("commit script answered \(reply)") }
                results.append(try result(of: reply, metrics: metrics))
            }
        }
        return results
    }

    /// The refusal in a commit's `.failed` error ("LREM key: READONLY …") when it is Redis
    /// refusing writes for now (OOM, READONLY, LOADING…: `RedisError.isOutage`), not that
    /// message's failure: its batch stays in flight and is retried with backoff (PROTOCOL.md 6).
    static func refusal(in failure: String) -> RedisError? {
        for part in [Substring(failure)] + failure.split(separator: ": ").dropFirst() {
            let error = RedisError.server(String(part))
            if error.isOutage { return error }
        }
        return nil
    }

    /// One commit's result as a script returns it (see `commit.lua`'s and `coordinate.lua`'s
    /// headers).
    static func result(of item: RedisReply, metrics: DaemonMetrics?) throws(RedisError) -> Result {
        switch item {
        case .integer(1): return .applied
        case .integer(0): return .messageGone
        case .integer(12): return .journaled
        case .integer(let cut) where cut < 0:
            metrics?.repliesDropped(Int(-cut))
            return .applied
        case .integer: return .stale
        case .bulk(let text) where text.first == UInt8(ascii: "U"):
            return .appliedReplyUndeliverable(String(decoding: text.dropFirst(), as: UTF8.self))
        case .bulk(let text): return .failed(String(decoding: text.dropFirst(), as: UTF8.self))
        default: throw RedisError.protocolError("commit script answered \(item)")
        }
    }

    private static func command(for commits: ArraySlice<Commit>, declaring: Bool = false) -> RedisCommand {
        var all: [[UInt8]] = [Array("EVALSHA".utf8), Array(Scripts.commit.sha1.utf8), Array("0".utf8)]
        if declaring {
            // On a Redis Cluster every key a call touches is declared (the script reads none of
            // KEYS): the server then checks they share a slot, and redirects before running.
            var seen = Set<[UInt8]>()
            let declared = commits.flatMap(\.touchedKeys).filter { seen.insert($0).inserted }
            all[2] = Array(String(declared.count).utf8)
            all.append(contentsOf: declared)
        }
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
