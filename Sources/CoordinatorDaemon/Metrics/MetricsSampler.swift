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

    // Touched only by the sampler's thread: approval id -> risk (an approval's risk never changes).
    private var riskOf: [String: String] = [:]

    init(context: DaemonContext) {
        self.context = context
        self.loop = LoopThread(name: "metrics", context: context)
    }

    /// Samples until graceful shutdown.
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        while !loop.isStopping {
            var sample: DaemonMetrics.Sample?
            do {
                sample = try read(loop.currentConnection())
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
        let unknown = pending.lazy.filter { self.riskOf[$0] == nil }.prefix(Self.maxRiskReadsPerSample)
        let unknownIDs = Array(unknown)
        var second = [RedisCommand("ZCOUNT", keys.pendingApprovals, "-inf", nowMs + 3_600_000)]
        second += inflight.map { RedisCommand("LLEN", $0.list) }
        second += unknownIDs.map { RedisCommand("GET", keys.approval($0)) }
        let more = try connection.pipeline(second)
        sample.expiringSoon = Int(more[0].integer ?? 0)
        for (offset, list) in inflight.enumerated() {
            sample.inflight[list.queue, default: 0] += Int(more[1 + offset].integer ?? 0)
        }
        for (id, reply) in zip(unknownIDs, more.dropFirst(1 + inflight.count)) {
            riskOf[id] = reply.bytes.flatMap(Self.risk) ?? "unknown"
        }
        // Forget approvals that left the pending index.
        if riskOf.count > pending.count {
            let present = Set(pending)
            riskOf = riskOf.filter { present.contains($0.key) }
        }
        for id in pending {
            if let risk = riskOf[id] { sample.approvalsByRisk[risk, default: 0] += 1 }
        }
        return sample
    }

    private struct RiskOnly: Decodable {
        var risk_level: String
    }

    private static func risk(_ bytes: [UInt8]) -> String? {
        try? JSONDecoder().decode(RiskOnly.self, from: Data(bytes)).risk_level
    }
}
