import Foundation
import Logging
import RedisClient

/// Handles the messages of one queue, a batch at a time.
protocol BatchHandler: AnyObject, Sendable {
    /// The queue's name under the prefix ("requests", "approvals").
    var queueName: String { get }
    /// Writes every message's effects, each commit acknowledging its message in `inflight`.
    /// Throws only when Redis is unreachable; what was not committed stays in flight.
    func handle(_ messages: [[UInt8]], inflight: String, connection: RedisConnection) throws(RedisError)
}

/// One reliable consumer on a thread of its own (blocking pops never touch Swift's
/// cooperative pool): messages move atomically from the queue into this worker's in-flight
/// list and leave it only in the commit that writes their effects.
final class QueueWorker: @unchecked Sendable {
    private let context: DaemonContext
    private let handler: any BatchHandler
    private let queue: String
    let inflight: String
    private let name: String
    private let loop: LoopThread

    init(context: DaemonContext, handler: any BatchHandler, index: Int) {
        self.context = context
        self.handler = handler
        self.queue = context.keys.queue(handler.queueName)
        self.inflight = context.keys.inflight(worker: context.workerID, queue: "\(handler.queueName):\(index)")
        self.name = "\(handler.queueName)-\(index)"
        self.loop = LoopThread(name: name, context: context)
    }

    func start() {
        loop.start { [self] in run() }
    }

    /// Stops taking messages; the batch in hand is finished first (or, when Redis is gone,
    /// left in flight for recovery). `waitUntilStopped` waits for the thread to end.
    func beginStopping() { loop.beginStopping() }

    func waitUntilStopped() { loop.waitUntilStopped() }

    private func run() {
        var handBack = true
        // Set when Redis was unreachable or refused a write: what is in flight is handled again
        // as it is, not handed back (PROTOCOL.md 6: that is no delivery of the message's fault).
        var retryInFlight = false
        var backoff = Backoff(first: 0.1, max: 5)
        while !loop.isStopping {
            guard context.announced.isSet else {
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            do {
                let connection = try loop.currentConnection()
                if handBack || retryInFlight {
                    // Our in-flight list is named in our index first, so that recovery finds
                    // it without a scan if we die (again after a Redis restart that lost it).
                    try register(connection)
                }
                if handBack {
                    // Whatever a failure of ours left in flight goes back first, counted.
                    try HandBack.run(inflight: inflight, queue: queue, context: context, connection: connection)
                    handBack = false
                }
                let batch = retryInFlight ? try inFlight(connection) : try take(connection)
                if !batch.isEmpty {
                    try handler.handle(batch, inflight: inflight, connection: connection)
                }
                if retryInFlight {
                    context.health.writesAccepted()
                    context.logger.info("\(name): Redis takes writes again")
                }
                retryInFlight = false
                backoff.reset()
            } catch {
                context.metrics.redisError()
                if error.isOutage {
                    // Redis is gone or will not write now (restart, OOM, replica, loading,
                    // failover): the batch stays in flight and is handled again, unchanged,
                    // with backoff. One log line per pause, not one per message.
                    if !retryInFlight { context.health.writesRefused() }
                    retryInFlight = true
                    context.logger.warning("\(name): Redis unavailable or refusing writes; messages stay in flight, retrying",
                                           metadata: ["error": "\(error)", "retry_within": "\(backoff.peek)s"])
                } else {
                    context.logger.error("\(name): Redis failed a batch; handing it back", metadata: ["error": "\(error)"])
                    handBack = true
                }
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
        loop.openConnection?.close()
    }

    /// What this worker holds in flight, oldest first (as it was taken).
    private func inFlight(_ connection: RedisConnection) throws(RedisError) -> [[UInt8]] {
        Self.batch(from: try connection.send("LRANGE", inflight, 0, -1)).reversed()
    }

    /// Names this worker's in-flight list (and its queue) in the daemon's index (HSET, idempotent).
    private func register(_ connection: RedisConnection) throws(RedisError) {
        _ = try connection.send("HSET", context.keys.inflightLists(worker: context.workerID), inflight, queue)
    }

    /// Up to a batch of messages; blocks up to a second when the queue is empty.
    private func take(_ connection: RedisConnection) throws(RedisError) -> [[UInt8]] {
        let size = context.configuration.batchSize
        let index = context.keys.inflightLists(worker: context.workerID)
        var batch = try Self.batch(from: connection.run(Scripts.takeBatch, keys: [queue, inflight, index], args: [size, 0]))
        if batch.isEmpty {
            guard let first = try connection.blockingMove(from: queue, to: inflight, timeout: 1) else { return [] }
            batch = [first]
            // Also names the list, which the blocking move could not do.
            batch += try Self.batch(from: connection.run(Scripts.takeBatch, keys: [queue, inflight, index], args: [size - 1, 1]))
        }
        return batch
    }

    private static func batch(from reply: RedisReply) -> [[UInt8]] {
        (reply.array ?? []).compactMap(\.bytes)
    }
}
