import RedisClient

/// What `coordinatord health` asks: which workers have a live heartbeat.
public enum HealthCheck {
    public static func liveWorkers(_ connection: RedisConnection, keys: Keys) throws(RedisError) -> [String] {
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string).sorted()
        guard !workers.isEmpty else { return [] }
        let alive = try connection.pipeline(workers.map { RedisCommand("EXISTS", keys.worker($0)) })
        return zip(workers, alive).filter { $0.1.integer == 1 }.map(\.0)
    }
}

extension HealthCheck {
    /// On a Redis Cluster (PROTOCOL.md section 11): the daemons whose registration in
    /// `coord:daemons` has not lapsed (by Redis's clock), each renewed with its partitions' leases.
    public static func liveDaemons(_ client: RedisClusterClient, keys: Keys) throws(RedisClusterError) -> [String] {
        let time = try client.send(RedisCommand("TIME"), routedBy: keys.clusterDaemons).array ?? []
        let now = (Int(time.first?.string ?? "") ?? 0) * 1000 + (Int(time.last?.string ?? "") ?? 0) / 1000
        return (try client.send("ZRANGEBYSCORE", keys.clusterDaemons, "(\(now)", "+inf").array ?? []).compactMap(\.string).sorted()
    }
}
