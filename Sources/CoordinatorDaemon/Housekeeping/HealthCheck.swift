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
