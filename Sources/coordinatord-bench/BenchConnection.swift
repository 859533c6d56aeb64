import Foundation
import RedisClient

/// One connection of the e2e bench's producers, collectors and setup: to one Redis, or through a
/// `RedisClusterClient` (commands routed by their keys, one pipeline per master; a blocking pop
/// by its list's slot). Used from one thread at a time, as both kinds of client.
final class BenchConnection {
    private let single: RedisConnection?
    private let cluster: RedisClusterClient?

    init(_ configuration: RedisConfiguration) throws {
        if configuration.isCluster {
            single = nil
            cluster = RedisClusterClient(configuration: configuration)
        } else {
            single = try RedisConnection(configuration: configuration)
            cluster = nil
        }
    }

    /// The commands in one round trip (per master on a cluster), replies in order.
    func pipeline(_ commands: [RedisCommand]) throws -> [RedisReply] {
        if let single { return try single.pipeline(commands) }
        return try cluster!.pipelinePerMaster(commands)
    }

    /// `BLMPOP timeout 1 list RIGHT COUNT count`: up to `count` elements, nil after `timeout` s.
    func pop(_ list: String, count: Int, timeout: Double) throws -> [RedisReply]? {
        let make = { (seconds: Double) in RedisCommand("BLMPOP", seconds, 1, list, "RIGHT", "COUNT", count) }
        let reply: RedisReply
        if let single {
            reply = try single.send(make(timeout))
        } else {
            reply = try cluster!.blocking(make, timeout: timeout, slot: RedisClusterSlot.of(list))
        }
        return reply.array?.last?.array
    }

    /// `BRPOP list timeout`: the element, nil after `timeout` s.
    func pop(_ list: String, timeout: Double) throws -> [UInt8]? {
        try pop(list, count: 1, timeout: timeout)?.first?.bytes
    }

    func close() {
        single?.close()
        cluster?.close()
    }
}
