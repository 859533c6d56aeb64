import Foundation
import RedisClient

/// How many replicas a `WAIT` asks for under `--min-replicas-acked N`: N, or as many as the
/// master has when it has fewer (a replica promoted after its master died has none until one
/// attaches). What no replica holds, no failover can lose: there is nothing to promote, and a
/// replica that attaches later copies the whole data set.
///
/// A master's replicas are counted both as the cluster knows them (`CLUSTER SHARDS`: the slot's
/// shard, every replica not marked failed) and by the links the master has (`ROLE`), and the
/// larger count holds:
/// - links alone miss a replica whose link is down for a moment, which a failover may still
///   promote (counting them let replies out that it never had: 164 to 180 of 1,200 answered
///   twice, differently, in the failover bench with `--replica-lag 0.5`);
/// - the cluster's view alone misses a replica the master's gossip has not yet heard of (it
///   shows as a master with no slots): with a `cluster-node-timeout` of 20 s it stayed so
///   for seconds after the replica synced, and a reply left with no replica having it.
enum ReplicaCount {
    static func needed(_ wanted: Int, slot: Int, shards: RedisReply, role: RedisReply) -> Int {
        let known = replicas(ofSlot: slot, in: shards)
        let linked = role.array.flatMap { $0.count > 2 ? $0[2].array?.count : nil }
        guard known != nil || linked != nil else { return wanted }
        return min(wanted, max(known ?? 0, linked ?? 0))
    }

    /// The commands whose replies `needed` reads, for a pipeline on the slot's master.
    static let probe = [RedisCommand("CLUSTER", "SHARDS"), RedisCommand("ROLE")]

    /// `WAIT` on the master of each slot (one per master) for the replicas `needed` asks of it:
    /// this client's last writes there have reached them. A master whose replicas lag is asked
    /// again, on the same connection (rather than the writes made again), for up to `patience`
    /// seconds. Throws when fewer replicas acknowledged by then, or when the client reconnected
    /// to the master meanwhile (a `WAIT` on another connection proves nothing of the writes):
    /// the caller then makes its writes again, which it has made safe to repeat.
    static func await(_ wanted: Int, client: RedisClusterClient, slots: Set<Int>, patience: TimeInterval = 10) throws {
        guard wanted > 0 else { return }
        var masters = Set<RedisConfiguration.Endpoint>()
        for slot in slots.sorted() {
            // No connection to the slot's master now (a refresh dropped the node the writes
            // went to): nothing to wait on, so the writes are made again.
            guard let mark = client.connectionMark(forSlot: slot) else {
                throw RedisError.server("MASTERDOWN no connection to the master of slot \(slot) to WAIT on")
            }
            guard masters.insert(mark.endpoint).inserted else { continue }
            try Self.await(wanted, slot: slot, patience: patience, master: "\(mark.endpoint)",
                           probe: { try client.pipeline(probe, slot: slot) },
                           wait: { (count: Int) in Int(try client.send(RedisCommand("WAIT", count, 1000), slot: slot).integer ?? 0) },
                           sameSocket: { client.connectionMark(forSlot: slot) == mark })
        }
    }

    /// One master's wait, over whatever talks to it: `probe` runs `probe` there (a caller may
    /// put a write of its own before it on the same socket) and returns its two replies, `wait`
    /// sends `WAIT` for that many replicas, and `sameSocket` says whether both went over the
    /// socket the writes did. Asked again while replicas lag, for up to `patience` seconds (0:
    /// once); throws as `await(_:client:slots:patience:)` does.
    static func await(_ wanted: Int, slot: Int, patience: TimeInterval, master: String, probe: () throws -> [RedisReply],
                      wait: (Int) throws -> Int, sameSocket: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(patience)
        while true {
            let replies = try probe()
            let count = needed(wanted, slot: slot, shards: replies[0], role: replies[1])
            guard count > 0 else { return }
            let acked = try wait(count)
            guard sameSocket() else {
                throw RedisError.server("MASTERDOWN the connection to \(master) was made anew before WAIT answered")
            }
            if acked >= count { return }
            if Date() >= deadline { throw RedisError.server("MASTERDOWN \(acked) of \(count) replicas acknowledged") }
        }
    }

    /// The replicas of the shard serving `slot`, but those the cluster marked failed; nil when
    /// the reply names no such shard.
    static func replicas(ofSlot slot: Int, in shards: RedisReply) -> Int? {
        for shard in shards.array ?? [] {
            let fields = map(shard)
            let bounds = (fields["slots"]?.array ?? []).compactMap { $0.integer.map(Int.init) ?? $0.string.flatMap { Int($0) } }
            guard stride(from: 0, to: bounds.count - 1, by: 2).contains(where: { bounds[$0] <= slot && slot <= bounds[$0 + 1] }) else {
                continue
            }
            return (fields["nodes"]?.array ?? []).map(map).filter { node in
                node["role"]?.string == "replica" && !(node["health"]?.string ?? "").hasPrefix("fail")
            }.count
        }
        return nil
    }

    /// A RESP2 map: a flat array of names and values.
    private static func map(_ reply: RedisReply) -> [String: RedisReply] {
        let flat = reply.array ?? []
        var fields: [String: RedisReply] = [:]
        for i in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[i].string { fields[name] = flat[i + 1] }
        }
        return fields
    }
}
