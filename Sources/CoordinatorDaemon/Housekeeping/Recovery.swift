import Coordination
import Foundation
import RedisClient

/// Recovery of lapsed workers: the in-flight messages of a daemon whose heartbeat lapsed go
/// back to their queues (plans it ran are taken over by lease instead, see `Leases`). Run by
/// every daemon's housekeeping every half `--heartbeat-ttl`; each lost message returns once.
struct Recovery {
    let context: DaemonContext

    /// Hands the in-flight messages of workers whose heartbeat lapsed back to their queues.
    /// Each worker names its in-flight lists in a hash, so no keyspace scan is needed.
    func sweep(_ connection: RedisConnection) throws(RedisError) {
        let keys = context.keys
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string)
        let others = workers.filter { $0 != context.workerID }
        guard !others.isEmpty else { return }
        let alive = try connection.pipeline(others.map { RedisCommand("EXISTS", keys.worker($0)) })
        for (worker, exists) in zip(others, alive) where exists.integer == 0 {
            var moved = 0
            let lists = (try connection.send("HGETALL", keys.inflightLists(worker: worker)).array ?? []).compactMap(\.string)
            var index = 0
            while index + 1 < lists.count {
                moved += try HandBack.run(inflight: lists[index], queue: lists[index + 1], context: context, connection: connection)
                index += 2
            }
            // Forgotten only if its lists stayed empty: one that was frozen, not dead, may have
            // thawed and taken a batch meanwhile, and must stay recoverable.
            let forgotten = try connection.run(Scripts.forgetWorker, keys: [keys.inflightLists(worker: worker), keys.workerIndex],
                                               args: [worker]).integer == 1
            context.logger.warning("recovered a lapsed worker's in-flight messages",
                                   metadata: ["worker": "\(worker)", "messages": "\(moved)", "forgotten": "\(forgotten)"])
        }
    }
}
