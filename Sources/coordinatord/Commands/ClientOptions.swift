import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// Where Redis is and the key prefix: what every command for people takes, `web` included.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Key prefix (env COORD_PREFIX).") var prefix: String?

    var keys: Keys { Environment.keys(prefix) }
    var url: String { Environment.redisURL(redisURL) }

    func validate() throws {
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("--redis-url: \(error)")
        }
        let prefix = keys.prefix
        guard !prefix.contains(where: { $0 == " " || $0 == "*" }) else {
            throw ValidationError("--prefix: must be without spaces or '*'")
        }
    }

    /// A connection, or exit 1 saying why there is none.
    func connect() throws -> RedisConnection {
        do {
            let configuration = try RedisConfiguration(url: url)
            let connection = try RedisConnection(configuration: configuration)
            _ = try connection.send("PING")
            return connection
        } catch {
            throw CommandFailure("cannot reach Redis at \((try? RedisConfiguration(url: url).redactedURL) ?? url): \(error)")
        }
    }
}

/// What every command for people takes: where Redis is, the key prefix, and `--json`.
struct ClientOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON lines instead of a table.") var json = false

    var keys: Keys { connection.keys }
    var url: String { connection.url }
    func connect() throws -> RedisConnection { try connection.connect() }

    /// On a Redis Cluster: a client of it, and how many partitions the daemons use (`--partitions`
    /// as given, then `COORD_PARTITIONS`, then the default). The caller closes the client.
    func cluster(partitions: Int?) throws -> (redis: RedisClusterClient, partitions: Int) {
        let count = Environment.partitions(partitions)
        guard count > 0 else { throw CommandFailure("--partitions: must be positive") }
        let configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration(url: url).clustered()
        } catch {
            throw CommandFailure("--redis-url: \(error)")
        }
        return (RedisClusterClient(configuration: configuration), count)
    }
}

/// Whether the daemons run on a Redis Cluster, and with how many partitions: for the commands
/// that read the daemon's state (`approvals`, `approve`, `reject`, `plan`, `dead`).
struct LayoutOptions: ParsableArguments {
    @Flag(help: "The daemons run on a Redis Cluster: read every partition (a redis+cluster:// URL implies it; env COORD_CLUSTER=1).") var cluster = false
    @Option(help: "On a cluster: the daemons' --partitions (env COORD_PARTITIONS).") var partitions: Int?

    func isCluster(url: String) -> Bool {
        Environment.isCluster(cluster, url: url)
    }
}

extension ClientOptions {
    /// Redis (one connection, or a client of the cluster) and where the daemon's state is in
    /// it; exit 1 when Redis cannot be reached. The caller closes it.
    func open(_ layout: LayoutOptions) throws -> (redis: any StateRedis, layout: StateLayout) {
        guard layout.isCluster(url: url) else { return (try connect(), StateLayout(keys: keys)) }
        let (redis, count) = try cluster(partitions: layout.partitions)
        do {
            _ = try redis.send(RedisCommand("PING"), slot: 0)
        } catch {
            redis.close()
            throw CommandFailure("cannot reach the Redis Cluster at \(redis.configuration.redactedURL): \(error)")
        }
        return (redis, StateLayout(keys: keys, partitions: count))
    }
}

extension ClientOptions {
    /// Runs `body` with Redis and where the daemon's state is in it (`open`), closed
    /// afterwards; an error answer exits 1 (`answering`).
    func withState(_ layout: LayoutOptions, _ body: (any StateRedis, StateLayout) throws -> Void) throws {
        try answering {
            let (redis, layout) = try open(layout)
            defer { redis.close() }
            try body(redis, layout)
        }
    }
}

/// An error answer: printed on standard error, exit status 1.
typealias CommandFailure = OperationFailure

/// Runs a command body, turning a Redis error or a `CommandFailure` into exit status 1 with
/// the message on standard error.
func answering(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CommandFailure {
        Terminal.error(failure.description)
        throw ExitCode(1)
    } catch let error as RedisError {
        Terminal.error("\(error)")
        throw ExitCode(1)
    }
}

/// Prints one JSON line.
func printJSONLine(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
        Terminal.line(String(decoding: data, as: UTF8.self))
    }
}
