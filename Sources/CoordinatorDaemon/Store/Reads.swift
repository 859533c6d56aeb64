import Coordination
import Foundation
import RedisClient

/// Reads sent to Redis in one round trip, Redis's clock first. Each read named here gives a
/// handle that finds its reply in the results, so handlers read typed state and never build
/// commands or count pipeline offsets.
struct Reads {
    /// Where one read's reply is in the results.
    struct Handle: Sendable {
        fileprivate let index: Int
    }

    fileprivate var commands: [RedisCommand] = [RedisClock.command]
    /// The clock of an earlier round trip, for reads that follow it (`init(after:)`).
    fileprivate var now: Date?

    /// Reads with Redis's clock first.
    init() {}

    /// Reads that depend on an earlier round trip's results, timed by its clock (no `TIME`).
    init(after earlier: ReadResults) {
        commands = []
        now = earlier.now
    }

    fileprivate mutating func add(_ command: RedisCommand) -> Handle {
        commands.append(command)
        return Handle(index: commands.count - 1)
    }
}

/// The replies of a `Reads`, and Redis's time when they were read.
struct ReadResults {
    fileprivate let replies: [RedisReply]
    let now: Date

    subscript(_ handle: Reads.Handle) -> RedisReply { replies[handle.index] }
}

extension Store {
    /// Sends `reads` in one round trip.
    func read(_ reads: Reads, on connection: RedisConnection) throws(RedisError) -> ReadResults {
        if let now = reads.now {
            return ReadResults(replies: reads.commands.isEmpty ? [] : try connection.pipeline(reads.commands), now: now)
        }
        let replies = try connection.pipeline(reads.commands)
        return ReadResults(replies: replies, now: RedisClock.date(from: replies[0]))
    }

    /// The reply stored for a `coordinate`'s request_id: `reply_to`, a newline, the reply.
    func readStoredReply(customer: String, requestID: String, into reads: inout Reads) -> Reads.Handle {
        reads.add(RedisCommand("GET", keys.dedupe(customer: customer, requestID: requestID)))
    }

    /// What a signature's seen key holds (PROTOCOL.md section 10).
    func readSeen(_ key: String, into reads: inout Reads) -> Reads.Handle {
        reads.add(RedisCommand("GET", key))
    }

    /// Takes the customer's lock for `token` if it is free (`OK` when taken); see `RequestHandler.lockMs`.
    func takeCustomerLock(_ customer: String, token: [UInt8], ms: Int, into reads: inout Reads) -> Reads.Handle {
        reads.add(RedisCommand("SET", keys.customerLock(customer), token, "NX", "PX", ms))
    }

    /// What one `coordinate` can conflict with (`gatherActive`): the active records listed in
    /// `sets` and named by `named`, and the version fields of those indexes.
    ///
    /// In calls of at most `gatherPerCall` index sets and as many named ids, each reading its
    /// sets with their version fields: a call blocks Redis while it runs, and a request's
    /// 10,000 resources in one call took 80 ms. Reads in several calls are still safe: the
    /// commit is guarded by every version field read, as it is by one call's.
    func readActive(customer: String, sets: [String], versionFields: [String], named: [String],
                    into reads: inout Reads) -> [Reads.Handle] {
        var handles: [Reads.Handle] = []
        var start = 0
        repeat {
            // (More named ids than sets, or the other way round: a side may run out first.)
            let ids = start < named.count ? Array(named[start..<min(named.count, start + Self.gatherPerCall)]) : []
            let chunk = start < sets.count ? Array(sets[start..<min(sets.count, start + Self.gatherPerCall)]) : []
            let fields = start < versionFields.count
                ? Array(versionFields[start..<min(versionFields.count, start + Self.gatherPerCall)]) : []
            handles.append(reads.add(Scripts.gatherActive.command(
                keys: [keys.active(customer: customer)] + chunk + [keys.versions(customer: customer)],
                args: [String(chunk.count), String(fields.count)] + fields + ids)))
            start += Self.gatherPerCall
        } while start < max(sets.count, named.count)
        return handles
    }

    /// Index sets (and named ids) per call of `gatherActive`.
    static let gatherPerCall = 2_500

    /// A plan as stored, and whether it was ever handed to the executors.
    func readPlan(_ id: String, into reads: inout Reads) -> (plan: Reads.Handle, queued: Reads.Handle) {
        (reads.add(RedisCommand("GET", keys.plan(id))), reads.add(RedisCommand("EXISTS", keys.planQueued(id))))
    }

    /// An approval as stored.
    func readApproval(_ id: String, into reads: inout Reads) -> Reads.Handle {
        reads.add(RedisCommand("GET", keys.approval(id)))
    }

    /// An active recommendation's record.
    func readActiveRecord(customer: String, id: String, into reads: inout Reads) -> Reads.Handle {
        reads.add(RedisCommand("HGET", keys.active(customer: customer), id))
    }

    /// A customer's pending approvals, soonest expiry first (`pendingApprovals`).
    func readPendingApprovals(customer: String, into reads: inout Reads) -> Reads.Handle {
        reads.add(Scripts.pendingApprovals.command(
            keys: [keys.pendingApprovals(customer: customer)], args: [keys.approvalKeyHead, keys.approvalKeyTail]))
    }

    /// Active records by customer and recommendation id, in one round trip.
    func readActiveRecords(_ wanted: [(customer: String, id: String)],
                           on connection: RedisConnection) throws(RedisError) -> [RedisReply] {
        if wanted.isEmpty { return [] }
        return try connection.pipeline(wanted.map { RedisCommand("HGET", keys.active(customer: $0.customer), $0.id) })
    }

    /// Frees customer locks taken but not used (their request was answered otherwise).
    func releaseCustomerLocks(_ customers: [String], on connection: RedisConnection) throws(RedisError) {
        if customers.isEmpty { return }
        _ = try connection.pipeline(customers.map { RedisCommand("DEL", keys.customerLock($0)) })
    }
}
