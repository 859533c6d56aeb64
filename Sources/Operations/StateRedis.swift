import CoordinatorDaemon
import Foundation
import RedisClient

/// The Redis the operator commands and the console talk to: one `RedisConnection`, or a
/// `RedisClusterClient` (PROTOCOL.md section 11). Both block, as hiredis does: call them from a
/// thread of their own, never from Swift's cooperative pool. Errors are `RedisError`s either
/// way (`StateRedisError` says how a cluster's routing errors are mapped).
public protocol StateRedis: AnyObject {
    /// One command, routed by its first key on a cluster; an error reply throws `.server`.
    func call(_ command: RedisCommand) throws(RedisError) -> RedisReply
    /// Commands of any keys (each command's own keys in one slot), pipelined: one round trip on
    /// one Redis, one per master on a cluster. Replies in order, error replies in place.
    func calls(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply]
    /// A script whose keys share a slot; an error reply throws `.server`.
    func script(_ script: RedisScript, keys: [String], args: [any RedisArgument]) throws(RedisError) -> RedisReply
    /// `BLPOP key timeout`: the value, or nil when none came in time (`timeout` > 0).
    func pop(_ key: String, timeout: Double) throws(RedisError) -> [UInt8]?
    /// Redis's clock (the daemon compares times on it too), falling back to ours.
    func clock() -> Date
    func close()
}

extension StateRedis {
    /// One command for each place the daemon keeps its state (`StateLayout.places`: one Redis,
    /// or every partition), read together; replies in the order of `places`. This is how the
    /// commands and the console read "every partition": never with KEYS or SCAN.
    public func everyPlace(_ layout: StateLayout, _ command: (Keys) -> RedisCommand) throws(RedisError) -> [RedisReply] {
        try calls(layout.places.map(command))
    }
}

extension RedisConnection: StateRedis {
    public func call(_ command: RedisCommand) throws(RedisError) -> RedisReply { try send(command) }
    public func calls(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] { try pipeline(commands) }
    public func script(_ script: RedisScript, keys: [String], args: [any RedisArgument]) throws(RedisError) -> RedisReply {
        try run(script, keys: keys, args: args)
    }
    public func pop(_ key: String, timeout: Double) throws(RedisError) -> [UInt8]? { try blockingPop([key], timeout: timeout)?.value }
    public func clock() -> Date { redisNow(self) }
}

extension RedisClusterClient: StateRedis {
    public func call(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        do { return try send(command) } catch { throw StateRedisError.mapped(error) }
    }

    public func calls(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        do { return try pipelinePerMaster(commands) } catch { throw StateRedisError.mapped(error) }
    }

    public func script(_ script: RedisScript, keys: [String], args: [any RedisArgument]) throws(RedisError) -> RedisReply {
        do { return try run(script, keys: keys, args: args) } catch { throw StateRedisError.mapped(error) }
    }

    public func pop(_ key: String, timeout: Double) throws(RedisError) -> [UInt8]? {
        do { return try blockingPop([key], timeout: timeout)?.value } catch { throw StateRedisError.mapped(error) }
    }

    /// `TIME` of the master of slot 0 (the masters' clocks are the daemons' clocks too).
    public func clock() -> Date {
        guard let parts = try? send(RedisCommand("TIME"), slot: 0).array?.compactMap({ $0.string.flatMap(Double.init) }),
              parts.count == 2 else { return Date() }
        return Date(timeIntervalSince1970: parts[0] + parts[1] / 1_000_000)
    }
}

/// How a cluster's errors reach people: as the `RedisError` one connection would have thrown;
/// a redirect storm as a connection error (an outage), a key-layout bug as a protocol error.
enum StateRedisError {
    static func mapped(_ error: RedisClusterError) -> RedisError {
        switch error {
        case .redis(let error): error
        case .tooManyRedirects: .connection(error.description)
        case .crossSlot, .unroutable: .protocolError(error.description)
        }
    }
}

/// Where the daemon keeps its state: under one `Keys` on one Redis, or, on a Redis Cluster,
/// under each partition's (`Keys.partition(k)`, PROTOCOL.md section 11), with the entry queues,
/// the daemons' registry and a global dead list under the root `keys`.
public struct StateLayout: Sendable {
    /// The configured prefix's keys: all of them on one Redis, the global ones on a cluster.
    public let keys: Keys
    /// The daemons' `--partitions` on a cluster; nil on one Redis.
    public let partitions: Partitions?

    public init(keys: Keys, partitions: Int? = nil) {
        self.keys = keys
        self.partitions = partitions.map(Partitions.init(count:))
    }

    public var isPartitioned: Bool { partitions != nil }

    /// Every place state is kept: `[keys]`, or partition 0, 1, … in order.
    public var places: [Keys] {
        guard let partitions else { return [keys] }
        return (0..<partitions.count).map { keys.partition($0) }
    }

    /// The keys of a customer's state.
    public func of(customer: String) -> Keys {
        partitions.map { keys.partition($0.of(customer: customer)) } ?? keys
    }

    /// The keys of an approval's or plan's state: on a cluster, the partition its id begins
    /// with (`7.…`); nil when it names none (then no such record exists).
    public func of(id: String) -> Keys? {
        guard let partitions else { return keys }
        return partitions.of(id: id).map { keys.partition($0) }
    }

    /// The partition of a place of `places` (nil on one Redis).
    public func partition(at index: Int) -> Int? { partitions == nil ? nil : index }
}
