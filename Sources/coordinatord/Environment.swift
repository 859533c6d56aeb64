import CoordinatorDaemon
import Foundation
import RedisClient

/// The environment as every command reads it: a variable set to "" counts as unset. The
/// variables every command shares are read here only; `run`'s own are in `DaemonSettings`.
enum Environment {
    static func value(_ name: String, in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `--redis-url` as given, then `REDIS_URL`, then Redis on this machine.
    static func redisURL(_ flag: String?) -> String {
        flag ?? value("REDIS_URL") ?? "redis://127.0.0.1:6379/0"
    }

    /// The keys under `--prefix` as given, then `COORD_PREFIX`, then `coord`.
    static func keys(_ flag: String?) -> Keys {
        Keys(prefix: flag ?? value("COORD_PREFIX") ?? "coord")
    }

    /// Whether Redis is a Redis Cluster: `--cluster`, a `redis+cluster://` URL, or `COORD_CLUSTER=1`.
    static func isCluster(_ flag: Bool, url: String) -> Bool {
        flag || url.hasPrefix("redis+cluster://") || value("COORD_CLUSTER") == "1"
    }

    /// The daemons' partitions: `--partitions` as given, then `COORD_PARTITIONS`, then the default.
    static func partitions(_ flag: Int?) -> Int {
        flag ?? value("COORD_PARTITIONS").flatMap { Int($0) } ?? Partitions.defaultCount
    }
}
