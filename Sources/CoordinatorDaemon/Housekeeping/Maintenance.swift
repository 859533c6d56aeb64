import Coordination
import Foundation
import Logging
import RedisClient

/// The daemon's housekeeping, on a thread of its own, twice a second: the heartbeat, and the
/// sweeps named in this folder, each in its own file: `ApprovalExpiry`, `PlanHold` and
/// `Recovery`. `Retention` is no sweep: it is a TTL set in the commit that ends a record.
/// Every daemon runs it; the commits make sure each overdue approval expires once, each held
/// plan ends once and each lost message returns once.
final class Maintenance: @unchecked Sendable {
    private let context: DaemonContext
    private let loop: LoopThread

    init(context: DaemonContext) {
        self.context = context
        self.loop = LoopThread(name: "maintenance", context: context)
    }

    /// Runs housekeeping until graceful shutdown, which removes this daemon's heartbeat.
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        var lastRecovery = Date.distantPast
        while !loop.isStopping {
            // Each task on its own: one that fails (a sweeper meeting a bad entry, say) never
            // keeps the others from running.
            if let connection = try? loop.currentConnection() {
                task("heartbeat") { () throws(RedisError) in try beat(connection) }
                task("approval expiry") { () throws(RedisError) in try ApprovalExpiry(context: context).sweep(connection) }
                task("plan hold") { () throws(RedisError) in try PlanHold(context: context).sweep(connection) }
                if Date().timeIntervalSince(lastRecovery) >= context.configuration.heartbeatTTL / 2 {
                    task("recovery") { () throws(RedisError) in try Recovery(context: context).sweep(connection) }
                    lastRecovery = Date()
                }
            } else {
                context.metrics.redisError()
                context.logger.error("maintenance: Redis unavailable, retrying")
            }
            for _ in 0..<5 where !loop.isStopping { Thread.sleep(forTimeInterval: 0.1) }
        }
        // A clean stop leaves no heartbeat behind, so nobody waits for it to lapse.
        if let connection = loop.openConnection {
            _ = try? connection.pipeline([
                RedisCommand("DEL", context.keys.worker(context.workerID)),
                RedisCommand("SREM", context.keys.workerIndex, context.workerID),
                RedisCommand("DEL", context.keys.inflightLists(worker: context.workerID)),
            ])
            connection.close()
        }
    }

    private func task(_ name: String, _ body: () throws(RedisError) -> Void) {
        do {
            try body()
        } catch {
            context.metrics.redisError()
            context.logger.error("maintenance: \(name) failed; the other tasks go on", metadata: ["error": "\(error)"])
        }
    }

    private func beat(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let counts = context.counters.snapshot
        let key = keys.worker(context.workerID)
        let ttlMs = Int(context.configuration.heartbeatTTL * 1000)
        _ = try connection.pipeline([
            RedisCommand("HSET", key,
                         "host", ProcessInfo.processInfo.hostName, "pid", Int(getpid()),
                         "started_at", Timestamp.string(from: context.startedAt), "version", DaemonVersion.current,
                         "processed", counts.processed, "dead_lettered", counts.deadLettered,
                         "plans_finished", counts.plansFinished, "beat_at", Timestamp.string(from: Date())),
            RedisCommand("PEXPIRE", key, ttlMs),
            RedisCommand("SADD", keys.workerIndex, context.workerID),
        ])
        context.announced.set()
    }
}
