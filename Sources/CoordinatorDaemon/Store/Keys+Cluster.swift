import Foundation
import RedisClient

/// The keys of Redis Cluster mode (PROTOCOL.md section 11, docs/CLUSTER.md). A partition's
/// keys are the single-Redis layout under `<prefix>:{p<k>}`; the few keys that are not in a
/// partition (the entry queues, what ingress holds in flight, the daemons' registry) are
/// spelled here too.
extension Keys {
    /// Partition `k`'s keys: every key of `Keys` under `<prefix>:{p<k>}`, so all of them hash
    /// to k's slot (the first `{…}` of a key is its hash tag), the event channel unchanged.
    public func partition(_ k: Int) -> Keys {
        Keys(prefix: "\(root):{p\(k)}", root: root)
    }

    /// Replies a partition's commits wrote (`reply_to`, newline, the reply), oldest first, until
    /// the daemon holding the partition moves each to its `reply_to`.
    public var outbox: String { "\(prefix):outbox" }
    /// Outbox entries one worker is delivering (handed back to the outbox if it dies).
    public func outboxSending(worker: String) -> String { inflight(worker: worker, queue: "outbox") }
    /// Step dispatches (and withdrawals) a partition's commits wrote for agents' step lists,
    /// oldest first, until the daemon holding the partition moves each there (`StepOutbox`).
    public var stepOutbox: String { "\(prefix):steps:outbox" }
    /// Step outbox entries one worker is delivering (handed back to the step outbox if it dies).
    public func stepOutboxSending(worker: String) -> String { inflight(worker: worker, queue: "steps:outbox") }
    /// Marks one step attempt (by its token) delivered to an agent's list, in that list's slot
    /// (the list's name is the mark's hash tag), so a delivery repeated after a crash adds
    /// nothing. Nil when the list's name has braces of its own (another slot): then no mark.
    public func stepSent(list: String, token: String) -> String? {
        guard !list.contains("{"), !list.contains("}") else { return nil }
        return "\(root):{\(list)}:sent:\(token)"
    }
    /// The daemon holding a partition (`SET NX PX`, renewed): on a partition's `Keys`.
    public var partitionLease: String { "\(prefix):owner" }
    /// Marks a message ingress pushed into this partition (by entry queue and SHA-256 of its
    /// bytes; value: the in-flight list it was taken into), so a move repeated after a crash
    /// adds nothing. Deleted once the move is acknowledged; a TTL bounds what a crash leaves.
    public func moved(queue: String, digest: String) -> String { "\(prefix):moved:\(queue):\(digest)" }

    /// Daemons running on the cluster, by the deadline (ms) of their registration: how many
    /// share the partitions.
    public var clusterDaemons: String { "\(root):daemons" }
    /// One daemon's in-flight list for an entry queue (`coord:requests`): the entry queue's
    /// whole name as hash tag, so the list hashes to the entry queue's slot and `BLMOVE` works.
    public func ingressInflight(queue: String, worker: String) -> String { "\(root):inflight:{\(queue)}:ingress:\(worker)" }
    /// The ingress in-flight lists of an entry queue → the deadline (ms) of their holder, in
    /// the entry queue's slot: a lapsed one is taken over without a scan.
    public func ingressIndex(queue: String) -> String { "\(root):ingress:{\(queue)}" }
}

/// How a cluster deployment splits its state (PROTOCOL.md section 11): a fixed number of
/// partitions; a customer's partition is CRC16 of its id (Redis Cluster's CRC16) modulo it;
/// plan and approval ids begin with `<k>.`.
public struct Partitions: Sendable, Equatable {
    public let count: Int

    public init(count: Int) { self.count = count }

    public static let defaultCount = 64

    /// The partition of a customer.
    public func of(customer: String) -> Int {
        Int(RedisClusterSlot.crc16(Array(customer.utf8))) % count
    }

    /// The partition an id names (`7.1b4e…` is 7), nil when it names none of ours.
    public func of(id: String) -> Int? {
        guard let dot = id.utf8.firstIndex(of: UInt8(ascii: ".")), dot != id.utf8.startIndex,
              id.utf8.distance(from: id.utf8.startIndex, to: dot) <= 6,
              let k = Int(String(id[..<dot])), k >= 0, k < count, String(k) == String(id[..<dot]) else { return nil }
        return k
    }

    /// A partition for a message nothing routes (not JSON, no customer, an id of no
    /// partition): any one can refuse it; its bytes pick it, so a repeat goes the same way.
    public func of(bytes: [UInt8]) -> Int {
        Int(RedisClusterSlot.crc16(Array(bytes.prefix(65_536)))) % count
    }
}
