import Coordination
import Foundation
import RedisClient

/// What makes a daemon's loops serve one partition of a cluster (PROTOCOL.md section 11): the
/// partition's keys (`Keys.partition(_:)`), a connection configuration pinned to the master
/// holding the partition's slot, a worker id of its own, ids that begin with `<k>.`, and
/// replies through the partition's outbox. Everything else is the single-Redis daemon,
/// unchanged: every key it touches carries the partition's tag, so every commit is one slot.
struct PartitionRole: Sendable {
    let index: Int
    let keys: Keys
    /// The master holding the partition's slot; `isCluster` is true (commits declare their keys).
    let redis: RedisConfiguration
    let workerID: String

    /// A reply inside a commit (which touches only the partition's slot): into the outbox as
    /// `reply_to`, newline, reply; the outbox loop moves it to `reply_to`. The dedupe record
    /// has the same bytes as on one Redis.
    func reply(_ reply: [UInt8], to replyTo: String?, dedupe: (key: String, ttl: Int)?, in commit: inout Commit) {
        let entry = Array((replyTo ?? "").utf8) + [UInt8(ascii: "\n")] + reply
        if let dedupe { commit.write("SET", dedupe.key, entry, "EX", dedupe.ttl) }
        if replyTo != nil { commit.write("LPUSH", keys.outbox, entry) }
    }
}

/// Ids of plans, approvals and the rest the engine makes: `<k>.<uuid>` in partition k, so a
/// lookup or a decision is routed by its id alone; plain UUIDs on one Redis.
struct PartitionIDs: IDGenerator {
    private var uuids = UUIDGenerator()
    let prefix: String

    init(prefix: String) { self.prefix = prefix }

    mutating func next() -> String {
        prefix.isEmpty ? uuids.next() : prefix + uuids.next()
    }
}

extension DaemonContext {
    /// A generator of new ids for this context's partition (plain UUIDs on one Redis).
    func newIDs() -> PartitionIDs {
        PartitionIDs(prefix: partition.map { "\($0.index)." } ?? "")
    }
}
