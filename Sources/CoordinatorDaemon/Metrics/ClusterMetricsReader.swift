import Foundation
import RedisClient

/// The sampler's reads on a Redis Cluster (PROTOCOL.md section 11): the same gauges as on one
/// Redis, summed over the partitions, read key by key (never `KEYS` or `SCAN`) in a few
/// rounds of one pipeline per master. A queue's depth is its entry queue's (`coord:requests`)
/// plus every partition's (`coord:{p<k>}:requests`); in flight is what this daemon holds:
/// its ingress lists and the lists its partitions' loops registered (`<daemon>-p<k>`).
/// A read that fails, or a master that answers an error, makes the sample fail: the daemon
/// is then not up (`coordinatord_up` 0) until the cluster answers again.
final class ClusterMetricsReader {
    private let context: DaemonContext
    private let root: Keys
    private let partitions: Int
    private let client: RedisClusterClient

    init(context: DaemonContext) {
        self.context = context
        self.root = Keys(prefix: context.keys.root)
        self.partitions = context.configuration.partitions
        // A dead master fails the sample within seconds (up turns 0), not the default 10 s.
        var options = RedisClusterClient.Options()
        options.retryTimeout = 2
        self.client = RedisClusterClient(configuration: context.redis, options: options)
    }

    func close() { client.close() }

    /// The entry queues: a message waits there before ingress moves it to its partition.
    static let entryQueues = ["requests", "approvals", "steps:results"]

    func read(risks: inout ApprovalRisks) throws -> DaemonMetrics.Sample {
        let queues = DaemonMetrics.sampledQueues
        let perPartition = max(1, MetricsSampler.maxPendingSampled / max(1, partitions))
        // Round 1: every queue's length, pending approvals and this daemon's in-flight index.
        var first: [RedisCommand] = queues.map { RedisCommand("LLEN", root.queue($0)) }
        first += Self.entryQueues.map { RedisCommand("LLEN", root.ingressInflight(queue: root.queue($0), worker: context.workerID)) }
        for k in 0..<partitions {
            let part = root.partition(k)
            first += queues.map { RedisCommand("LLEN", part.queue($0)) }
            first.append(RedisCommand("ZRANGE", part.pendingApprovals, 0, perPartition - 1))
            first.append(RedisCommand("HGETALL", part.inflightLists(worker: "\(context.workerID)-p\(k)")))
        }
        let one = try checked(client.pipelinePerMaster(first))
        var sample = DaemonMetrics.Sample()
        for (offset, queue) in queues.enumerated() { sample.queueDepth[queue] = Self.int(one[offset]) }
        for (offset, queue) in Self.entryQueues.enumerated() {
            sample.inflight[queue, default: 0] += Self.int(one[queues.count + offset])
        }
        var pending: [String] = []
        var inflight: [(queue: String, list: String)] = []
        let width = queues.count + 2
        for k in 0..<partitions {
            let base = queues.count + Self.entryQueues.count + k * width
            for (offset, queue) in queues.enumerated() { sample.queueDepth[queue, default: 0] += Self.int(one[base + offset]) }
            pending += (one[base + queues.count].array ?? []).compactMap(\.string)
            let registry = (one[base + queues.count + 1].array ?? []).compactMap(\.string)
            let part = root.partition(k)
            for i in Swift.stride(from: 0, to: registry.count - 1, by: 2) {
                inflight.append((part.queueName(registry[i + 1]), registry[i]))
            }
        }
        // Round 2: approvals expiring within the hour (Redis's clock), in-flight lengths, and
        // the risk of approvals not seen before.
        let nowMs = try redisTimeMs()
        let unknownIDs = risks.unknown(in: pending)
        var second = (0..<partitions).map { RedisCommand("ZCOUNT", root.partition($0).pendingApprovals, "-inf", nowMs + 3_600_000) }
        second += inflight.map { RedisCommand("LLEN", $0.list) }
        let partitionOf = Partitions(count: partitions)
        second += unknownIDs.map { RedisCommand("GET", root.partition(partitionOf.of(id: $0) ?? 0).approval($0)) }
        let two = try checked(client.pipelinePerMaster(second))
        sample.expiringSoon = two.prefix(partitions).reduce(0) { $0 + Self.int($1) }
        for (offset, list) in inflight.enumerated() {
            sample.inflight[list.queue, default: 0] += Self.int(two[partitions + offset])
        }
        risks.learn(unknownIDs, replies: Array(two.dropFirst(partitions + inflight.count)))
        sample.approvalsByRisk = risks.tally(pending)
        return sample
    }

    private func checked(_ replies: [RedisReply]) throws -> [RedisReply] {
        for reply in replies {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
        return replies
    }

    private func redisTimeMs() throws -> Int {
        let parts = try client.send(RedisCommand("TIME"), routedBy: root.clusterDaemons).array?.compactMap { $0.string.flatMap(Int.init) } ?? []
        return parts.count == 2 ? parts[0] * 1000 + parts[1] / 1000 : Int(Date().timeIntervalSince1970 * 1000)
    }

    private static func int(_ reply: RedisReply) -> Int { Int(reply.integer ?? 0) }
}
