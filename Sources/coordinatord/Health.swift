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
        let url = redisURL ?? Environment.value("REDIS_URL") ?? "redis://127.0.0.1:6379/0"
        let keys = Keys(prefix: prefix ?? Environment.value("COORD_PREFIX") ?? "coord")
        if url.hasPrefix("redis+cluster://") || Environment.value("COORD_CLUSTER") == "1" {
            try runOnCluster(url: url, keys: keys)
            return
        }
        do {
            let connection = try RedisConnection(configuration: RedisConfiguration(url: url))
            defer { connection.close() }
            let live = try HealthCheck.liveWorkers(connection, keys: keys)
            if live.isEmpty {
                print("unhealthy: no live coordinatord heartbeat under \(keys.prefix):workers")
                throw ExitCode(1)
            }
            print("healthy: \(live.count) live worker(s): \(shown(live.joined(separator: ", ")))")
        } catch let error as RedisError {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        }
    }
}

extension Health {
    /// On a Redis Cluster: a live daemon is one registered in `<prefix>:daemons` whose
    /// registration has not lapsed.
    private func runOnCluster(url: String, keys: Keys) throws {
        do {
            let client = RedisClusterClient(configuration: try RedisConfiguration(url: url).clustered())
            defer { client.close() }
            let live = try HealthCheck.liveDaemons(client, keys: keys)
            if live.isEmpty {
                print("unhealthy: no live coordinatord in \(keys.clusterDaemons)")
                throw ExitCode(1)
            }
            print("healthy: \(live.count) live daemon(s): \(shown(live.joined(separator: ", ")))")
        } catch let error as RedisError {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        } catch let error as RedisClusterError {
            print("unhealthy: \(error)")
            throw ExitCode(1)
        }
    }
}
