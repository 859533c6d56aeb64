import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exit 0 when a live daemon heartbeat exists under the prefix, 1 otherwise.")

    @Option(help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Key prefix (env COORD_PREFIX).") var prefix: String?

    func run() throws {
        let url = Environment.redisURL(redisURL)
        let keys = Environment.keys(prefix)
        if Environment.isCluster(false, url: url) {
            // On a Redis Cluster a live daemon is one registered in `<prefix>:daemons` whose
            // registration has not lapsed.
            try report("daemon", none: "no live coordinatord in \(keys.clusterDaemons)") {
                let client = RedisClusterClient(configuration: try RedisConfiguration(url: url).clustered())
                defer { client.close() }
                return try HealthCheck.liveDaemons(client, keys: keys)
            }
        } else {
            try report("worker", none: "no live coordinatord heartbeat under \(keys.prefix):workers") {
                let connection = try RedisConnection(configuration: RedisConfiguration(url: url))
                defer { connection.close() }
                return try HealthCheck.liveWorkers(connection, keys: keys)
            }
        }
    }

    /// Prints `healthy` with the live daemons `read` finds, or `unhealthy` with why there is
    /// none (exit 1).
    private func report(_ noun: String, none: String, _ read: () throws -> [String]) throws {
        let live: [String]
        do {
            live = try read()
        } catch let error as RedisError {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        } catch let error as RedisClusterError {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        }
        guard !live.isEmpty else {
            print("unhealthy: \(none)")
            throw ExitCode(1)
        }
        print("healthy: \(live.count) live \(noun)(s): \(shown(live.joined(separator: ", ")))")
    }
}
