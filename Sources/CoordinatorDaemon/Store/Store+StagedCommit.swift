import Coordination
import Crypto
import Foundation
import RedisClient

/// A `coordinate` too large for one short script call, as the calls that commit it in parts
/// (docs/DESIGN.md, "Staged commits"): `open` checks the guards, takes the customer's lock and
/// writes the journal; `parts` follow in order, the last one answering.
struct StagedCommit {
    var customer: String
    /// Where the later parts' calls are written before `open` (`Keys.journalParts`).
    var partsKey: String
    var open: RedisCommand
    /// The later parts' calls, as blobs (`Store.blob`): kept once, as written to the journal.
    var parts: [[UInt8]]
}

extension Store {
    /// About how many Redis commands one call of a staged commit runs: 15–48 ms of Redis per
    /// call on the 2-core machine of docs/BENCHMARKS.md, quiet (PROTOCOL.md 2.2: no call
    /// blocks Redis for 100 ms).
    static let commandsPerCall = 8_000

    /// About how many commands `coordinate.lua` runs for a record (the record, its version
    /// bump, and per index set a type check and an SADD), an approval, a plan or an event.
    static func weight(of record: RecommendationRecord) -> Int {
        3 + 2 * max(1, record.recommendation.affectedResources.count)
    }

    /// Whether this message's `coordinate` could need staging: an upper bound of its change's
    /// commands (per recommendation its record and indexes, an approval or a plan, and its
    /// events) passes `commandsPerCall`.
    static func couldBeStaged(_ request: CoordinationRequest) -> Bool {
        var weight = 0
        for rec in request.recommendations { weight += 12 + 2 * max(1, rec.affectedResources.count) }
        return weight > commandsPerCall
    }

    /// How long prepared parts wait for their first call (a daemon that died in between leaves
    /// nothing behind for longer).
    static let preparedMs = 3_600_000

    /// The key marking a message whose staged commit finished (`Keys.staged`).
    func stagedMarker(customer: String, message: [UInt8]) -> String {
        keys.staged(customer: customer, digest: SHA256.hash(data: message).map { String(format: "%02x", $0) }.joined())
    }

    /// The change as a staged commit, or nil when it fits one call (`commit`). `dedupe`,
    /// `dedupeTTL` and `seen` as `coordinateCall` takes them.
    func stagedCommit(_ change: CoordinationChange, acknowledging message: [UInt8], in inflight: String,
                      reply: [UInt8], replyTo: String?, dedupe: String?, dedupeTTL: Int? = nil,
                      seen: (key: String, ttl: Int)? = nil, now: Date) -> StagedCommit? {
        var parts: [CoordinationChange] = []
        var token = change.lock ?? []
        if token.isEmpty {
            var ids = UUIDGenerator()
            token = Array(ids.next().utf8)
        }
        var current = change
        current.versions = []
        current.named = []
        current.lock = token
        current.records = []
        current.approvals = []
        current.plans = []
        current.events = []
        let empty = current
        var weight = 0
        func add(_ w: Int, _ put: (inout CoordinationChange) -> Void) {
            if weight > 0, weight + w > Self.commandsPerCall {
                parts.append(current)
                current = empty
                weight = 0
            }
            put(&current)
            weight += w
        }
        // Records (and their indexes) before the approvals and plans that name them, so that
        // a plan started at once never finds its recommendation missing.
        for record in change.records { add(Self.weight(of: record)) { $0.records.append(record) } }
        for approval in change.approvals { add(3) { $0.approvals.append(approval) } }
        for plan in change.plans { add(3) { $0.plans.append(plan) } }
        for event in change.events { add(2) { $0.events.append(event) } }
        parts.append(current)
        guard parts.count > 1 else { return nil }
        // Then a call that stores the reply, and the last, that answers.
        parts += [empty, empty]
        parts[0].versions = change.versions
        parts[0].named = change.named

        let marker = stagedMarker(customer: change.customer, message: message)
        let later = parts.indices.dropFirst().map { index in
            Self.blob(coordinateCall(parts[index], message: message, inflight: inflight, reply: reply, replyTo: replyTo,
                                     dedupe: dedupe, dedupeTTL: dedupeTTL, seen: seen, stage: .part(index + 1, role: index == parts.count - 1 ? .answers
                                                                    : index == parts.count - 2 ? .storesReply : .data, marker: marker),
                                     now: now))
        }
        let open = coordinateCall(parts[0], message: message, inflight: inflight, reply: reply, replyTo: replyTo, dedupe: dedupe,
                                  dedupeTTL: dedupeTTL, seen: seen, stage: .open(parts: parts.count), now: now)
        let partsKey = keys.journalParts(customer: change.customer, token: String(decoding: token, as: UTF8.self))
        return StagedCommit(customer: change.customer, partsKey: partsKey, open: open, parts: later)
    }

    /// Writes a staged commit's later parts where its first call finds them, one command each
    /// (a pipeline of them all would hold another copy of the whole commit), with a TTL that
    /// its first call removes.
    func prepare(_ staged: StagedCommit, on connection: RedisConnection) throws(RedisError) {
        _ = try connection.send("DEL", staged.partsKey)
        for (index, blob) in staged.parts.enumerated() {
            if case .error(let message) = try connection.send("HSET", staged.partsKey, "p\(index + 2)", blob) {
                throw RedisError.server(message)
            }
        }
        _ = try connection.send("PEXPIRE", staged.partsKey, Self.preparedMs)
    }

    /// A call's arguments after `EVALSHA <sha>`, each as a 4-byte big-endian length and its bytes.
    static func blob(_ call: RedisCommand) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(call.arguments.reduce(0) { $0 + 4 + $1.count })
        for argument in call.arguments.dropFirst(2) {
            let n = UInt32(argument.count)
            bytes.append(contentsOf: [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)])
            bytes.append(contentsOf: argument)
        }
        return bytes
    }

    /// The call a journal's blob stands for, or nil when it is not one of `blob`'s.
    static func call(fromBlob bytes: [UInt8]) -> RedisCommand? {
        var arguments: [[UInt8]] = [Array("EVALSHA".utf8), Array(Scripts.coordinate.sha1.utf8)]
        var i = 0
        while i < bytes.count {
            guard i + 4 <= bytes.count else { return nil }
            let n = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            i += 4
            guard i + n <= bytes.count else { return nil }
            arguments.append(Array(bytes[i..<(i + n)]))
            i += n
        }
        return RedisCommand(arguments: arguments)
    }

    /// Applies the later parts of a staged commit whose first call applied, in order; returns
    /// how the last one went (`.applied` too when another worker applied the rest from the
    /// journal meanwhile). A part Redis refuses leaves the journal for whoever comes next.
    func finish(_ staged: StagedCommit, on connection: RedisConnection, metrics: DaemonMetrics?) throws(RedisError) -> Commit.Result {
        var last = Commit.Result.applied
        for blob in staged.parts {
            guard let part = Self.call(fromBlob: blob) else { return .failed("a staged commit's part is unreadable") }
            let reply = try connection.send(part)
            if case .error(let message) = reply { throw RedisError.server(message) }
            if case .integer(13) = reply {
                // Another worker is rolling the journal forward: the rest is applied from it.
                _ = try rollForward(customer: staged.customer, holding: nil, on: connection, metrics: metrics)
                return .applied
            }
            last = try Commit.result(of: reply, metrics: metrics)
            if case .failed(let error) = last {
                // Redis refusing writes for now: the journal waits. Anything else is a key of
                // the wrong type among this part's (planted: the daemon's own are checked):
                // the commit is abandoned, as `abandon` says, and the message answered with it.
                if Commit.refusal(in: error) == nil { try abandon(customer: staged.customer, on: connection) }
                return last
            }
        }
        return last
    }

    /// Gives up a staged commit whose part Redis refused for good (a key of the wrong type
    /// among the part's, which its own check found before writing): its journal and the
    /// customer's lock go, so that the customer is not held for ever; the parts applied before
    /// stay (a commit stopped at a part is not undone, the one case where a commit is not
    /// whole; only a writer with the daemon's own rights can plant such a key).
    func abandon(customer: String, on connection: RedisConnection) throws(RedisError) {
        let journal = keys.journal(customer: customer)
        guard let token = try connection.send("HGET", journal, "token").string else { return }
        _ = try connection.pipeline([
            RedisCommand("DEL", journal, keys.journalParts(customer: customer, token: token), keys.customerLock(customer)),
        ])
    }

    /// Applies what is left of `customer`'s staged commit, from its journal, each part once and
    /// in order (another worker may be applying it at the same time: a part already applied is
    /// skipped). Nothing to do without a journal. Its last part acknowledges the message in the
    /// in-flight list its owner held it in and pushes its reply; when the caller holds that
    /// message itself (`holding`: handed back to it after its owner died), in the caller's
    /// in-flight list instead. Returns whether it acknowledged the held message so.
    func rollForward(customer: String, holding: (message: [UInt8], inflight: String)?, on connection: RedisConnection,
                     metrics: DaemonMetrics?) throws(RedisError) -> Bool {
        let journal = keys.journal(customer: customer)
        for _ in 0..<10_000 {
            let state = try connection.send("HMGET", journal, "next", "token").array ?? []
            guard state.count == 2, let number = state[0].string.flatMap(Int.init), let token = state[1].string else { return false }
            let partsKey = keys.journalParts(customer: customer, token: token)
            guard let blob = try connection.send("HGET", partsKey, "p\(number)").bytes, var call = Self.call(fromBlob: blob) else {
                // Applied meanwhile (its blob deleted with it, the next one due), or a journal
                // not written by this daemon: left alone.
                if try connection.send("HGET", journal, "next").string.flatMap(Int.init) != number { continue }
                return false
            }
            var acknowledgesHeld = false
            let count = call.arguments.count > 3 ? Int(String(decoding: call.arguments[2], as: UTF8.self)) ?? 0 : 0
            // ARGV[2] (flags) says whether this is the last part.
            let last = call.arguments.count > 4 + count && call.arguments[4 + count].contains(UInt8(ascii: "F"))
            if let holding, last, call.arguments[3 + count] == holding.message {
                // KEYS[1], the in-flight list the last part acknowledges the message in.
                call.arguments[3] = Array(holding.inflight.utf8)
                acknowledgesHeld = true
            }
            let reply = try connection.send(call)
            if case .error(let message) = reply { throw RedisError.server(message) }
            if case .integer(13) = reply { continue }
            let result = try Commit.result(of: reply, metrics: metrics)
            if case .failed(let error) = result {
                if let outage = Commit.refusal(in: error) { throw outage }
                try abandon(customer: customer, on: connection)
                return false
            }
            if acknowledgesHeld { return true }
        }
        return false
    }
}
