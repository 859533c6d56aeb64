import Coordination
import Foundation
import RedisClient

/// Reads the gauges that describe Redis (queue depths, this daemon's in-flight lists, pending
/// approvals) once a second, on a thread and connection of its own: a scrape never waits on
/// Redis, and blocking hiredis calls never touch Swift's cooperative pool.
final class MetricsSampler: @unchecked Sendable {
    private let context: DaemonContext
    private let loop: LoopThread
    /// The first this many pending approvals (soonest expiry first) are split by risk.
    static let maxPendingSampled = 100_000
    /// New approvals whose risk is read per sample; the rest are read on the next ones.
    static let maxRiskReadsPerSample = 1_000

    // Touched only by the sampler's thread.
    private var risks = ApprovalRisks()

    init(context: DaemonContext) {
        self.context = context
        self.loop = LoopThread(name: "metrics", context: context)
    }

    /// Samples until graceful shutdown.
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        // On a cluster the partitions are read through the cluster (no connection of our own).
        let cluster = context.configuration.isCluster ? ClusterMetricsReader(context: context) : nil
        defer { cluster?.close() }
        while !loop.isStopping {
            var sample: DaemonMetrics.Sample?
            do {
                if let cluster {
                    sample = try cluster.read(risks: &risks)
                } else {
                    sample = try read(loop.currentConnection())
                }
            } catch {
                context.metrics.redisError()
                context.logger.debug("metrics: Redis unavailable", metadata: ["error": "\(error)"])
            }
            context.metrics.record(sample, writesRefused: context.health.isRefusingWrites)
            for _ in 0..<10 where !loop.isStopping { Thread.sleep(forTimeInterval: 0.1) }
        }
        context.metrics.record(nil)
        loop.openConnection?.close()
    }

    private func read(_ connection: RedisConnection) throws(RedisError) -> DaemonMetrics.Sample {
        let keys = context.keys
        let queues = DaemonMetrics.sampledQueues
        var commands = [RedisCommand("TIME"),
                        RedisCommand("ZRANGE", keys.pendingApprovals, 0, Self.maxPendingSampled - 1),
                        // This daemon's in-flight lists, as its loops register them (list -> queue): no SCAN.
                        RedisCommand("HGETALL", keys.inflightLists(worker: context.workerID))]
        commands += queues.map { RedisCommand("LLEN", keys.queue($0)) }
        let replies = try connection.pipeline(commands)

        var sample = DaemonMetrics.Sample()
        for (offset, queue) in queues.enumerated() {
            sample.queueDepth[queue] = Int(replies[3 + offset].integer ?? 0)
        }
        let registry = (replies[2].array ?? []).compactMap(\.string)
        var inflight: [(queue: String, list: String)] = []
        var index = 0
        while index + 1 < registry.count {
            let queue = registry[index + 1]
            inflight.append((keys.queueName(queue), registry[index]))
            index += 2
        }

        // Redis's clock, as everywhere the daemon compares times.
        let time = replies[0].array?.compactMap { $0.string.flatMap(Int.init) } ?? []
        let nowMs = time.count == 2 ? time[0] * 1000 + time[1] / 1000 : Int(Date().timeIntervalSince1970 * 1000)
        let pending = (replies[1].array ?? []).compactMap(\.string)
        let unknownIDs = risks.unknown(in: pending)
        var second = [RedisCommand("ZCOUNT", keys.pendingApprovals, "-inf", nowMs + 3_600_000)]
        second += inflight.map { RedisCommand("LLEN", $0.list) }
        second += unknownIDs.map { RedisCommand("GET", keys.approval($0)) }
        let more = try connection.pipeline(second)
        sample.expiringSoon = Int(more[0].integer ?? 0)
        for (offset, list) in inflight.enumerated() {
            sample.inflight[list.queue, default: 0] += Int(more[1 + offset].integer ?? 0)
        }
        risks.learn(unknownIDs, replies: Array(more.dropFirst(1 + inflight.count)))
        sample.approvalsByRisk = risks.tally(pending)
        return sample
    }
}

/// The risk of each pending approval, read once (an approval's risk never changes), at most
/// `MetricsSampler.maxRiskReadsPerSample` new ones per sample.
struct ApprovalRisks {
    private var riskOf: [String: String] = [:]

    /// Pending approvals whose risk is not known yet, as many as one sample reads.
    func unknown(in pending: [String]) -> [String] {
        Array(pending.lazy.filter { riskOf[$0] == nil }.prefix(MetricsSampler.maxRiskReadsPerSample))
    }

    /// The approval records read for `ids` (a record gone or unreadable is `unknown`).
    mutating func learn(_ ids: [String], replies: [RedisReply]) {
        for (id, reply) in zip(ids, replies) {
            riskOf[id] = reply.bytes.flatMap(Self.risk) ?? "unknown"
        }
    }

    /// Pending approvals by risk; forgets those that left the pending index.
    mutating func tally(_ pending: [String]) -> [String: Int] {
        if riskOf.count > pending.count {
            let present = Set(pending)
            riskOf = riskOf.filter { present.contains($0.key) }
        }
        var byRisk: [String: Int] = [:]
        for id in pending {
            if let risk = riskOf[id] { byRisk[risk, default: 0] += 1 }
        }
        return byRisk
    }

    private static func risk(_ bytes: [UInt8]) -> String? {
        guard case .success(let approval) = TopLevelJSON.members(bytes) else { return nil }
        return approval["risk_level"]?.string
    }
}
