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
    /// Whether to take more messages now (false: the worker waits a moment and asks again).
    func admits(_ connection: RedisConnection) throws(RedisError) -> Bool
}

extension BatchHandler {
    func admits(_ connection: RedisConnection) throws(RedisError) -> Bool { true }
}

/// One reliable consumer on a thread of its own (blocking pops never touch Swift's
/// cooperative pool): messages move atomically from the queue into this worker's in-flight
/// list and leave it only in the commit that writes their effects.
final class QueueWorker: @unchecked Sendable {
    private let context: DaemonContext
    private let handler: any BatchHandler
    private let queue: String
    let inflight: String
    /// Where a message over `--max-message-bytes` is held, apart, while it is refused.
    private let oversized: String
    private let name: String
    private let loop: LoopThread

    init(context: DaemonContext, handler: any BatchHandler, index: Int) {
        self.context = context
        self.handler = handler
        self.queue = context.keys.queue(handler.queueName)
        self.inflight = context.keys.inflight(worker: context.workerID, queue: "\(handler.queueName):\(index)")
        self.oversized = context.keys.oversized(inflight: inflight)
        self.name = "\(handler.queueName)-\(index)"
        self.loop = LoopThread(name: name, context: context)
    }

    /// Runs the worker until graceful shutdown: then it stops taking messages; the batch in
    /// hand is finished first (or, when Redis is gone, left in flight for recovery).
    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private func runLoop() {
        var handBack = true
        // Set when Redis was unreachable or refused a write: what is in flight is handled again
        // as it is, not handed back (PROTOCOL.md 6: that is no delivery of the message's fault).
        var retryInFlight = false
        var backoff = Backoff(first: 0.1, max: 5)
        // Held back by the handler (`admits`), e.g. while plans wait for the executor.
        var waiting = false
        while !loop.isStopping {
            guard loop.announced() else { continue }
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
                if !retryInFlight, try !handler.admits(connection) {
                    if !waiting { context.logger.debug("\(name): takes nothing while the executor catches up") }
                    waiting = true
                    Thread.sleep(forTimeInterval: 0.005)
                    continue
                }
                waiting = false
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

    /// A batch holds at most this many bytes of messages to parse (the first message always
    /// goes, up to `--max-message-bytes`), so a batch of large messages stays small in memory.
    static let batchBytes = 16 << 20

    /// Up to a batch of messages; blocks up to a second when the queue is empty. A message over
    /// `--max-message-bytes` is refused here, from its first bytes, never read whole.
    private func take(_ connection: RedisConnection) throws(RedisError) -> [[UInt8]] {
        let size = context.configuration.batchSize
        var batch = try takeBatch(connection, count: size, name: false, parked: false)
        if batch.isEmpty {
            switch try connection.blockingMove(from: queue, to: inflight, timeout: 1, atMost: context.configuration.maxMessageBytes) {
            case .none:
                return []
            case .element(let first):
                batch = [first]
                // Also names the list, which the blocking move could not do.
                batch += try takeBatch(connection, count: size - 1, name: true, parked: false)
            case .oversized:
                // Moved unread into the in-flight list: park it apart and refuse it.
                batch = try takeBatch(connection, count: size, name: true, parked: true)
            }
        }
        return batch
    }

    /// The takeBatch script with this worker's lists and bounds; an oversized message in its
    /// reply is refused at once and left out of the batch.
    private func takeBatch(_ connection: RedisConnection, count: Int, name: Bool, parked: Bool) throws(RedisError) -> [[UInt8]] {
        let config = context.configuration
        let reply = try connection.run(
            Scripts.takeBatch, keys: [queue, inflight, context.keys.inflightLists(worker: context.workerID), oversized],
            args: [count, name ? 1 : 0, config.maxMessageBytes, config.deadLetterRawMax, Self.batchBytes, parked ? 1 : 0])
        var batch: [[UInt8]] = []
        for entry in reply.array ?? [] {
            if let bytes = entry.bytes {
                batch.append(bytes)
            } else if let parts = entry.array, parts.count == 2, let length = parts[0].integer, let head = parts[1].bytes {
                try refuseOversized(head: head, bytes: Int(length), connection: connection)
            }
        }
        return batch
    }

    /// PROTOCOL.md 6: a message over `--max-message-bytes` is refused `too_large` from its first
    /// bytes: answered when a `reply_to` stands whole in them (not under `--trust`, where it
    /// is unverified), dead-lettered with those bytes, `truncated` and `raw_bytes`, and
    /// acknowledged by its place in the oversized list.
    private func refuseOversized(head: [UInt8], bytes: Int, connection: RedisConnection) throws(RedisError) {
        let taken = DaemonMetrics.now()
        let config = context.configuration
        let decisions = handler.queueName == "approvals"
        let parsed = Envelope.parseOversized(head: head, bytes: bytes, maxBytes: config.maxMessageBytes, rules: context.replyRules)
        let failure = parsed.failure ?? Refusal(.tooLarge, "message is \(bytes) bytes")
        let now = try RedisClock.now(connection)
        var commit = Commit(acknowledgingHeldIn: oversized)
        if !context.trust.enforcing, let replyTo = parsed.replyTo {
            context.reply(WireMessages.errorReply(requestID: parsed.requestID, kind: decisions ? "approval" : parsed.kindName,
                                                  failure: failure), to: replyTo, in: &commit)
        }
        context.deadLetter(head, queue: queue, failure: failure, now: now, wholeBytes: bytes, in: &commit)
        switch try Commit.apply([commit], on: connection, metrics: context.metrics).first {
        case .applied?, .appliedReplyUndeliverable?:
            // Counted as its handler counts every message it finishes (and its dead letter by
            // code). A reply Redis refused needs no second letter: its too_large one records it.
            context.counters.add(processed: 1)
            if decisions {
                context.metrics.decision(failure, since: taken)
            } else {
                context.metrics.request(kind: parsed.kindName, failure, since: taken)
            }
            context.logger.warning("\(name): message over --max-message-bytes refused unread",
                                   metadata: ["bytes": "\(bytes)", "request_id": "\(parsed.requestID)"])
        case .failed(let error)?:
            // Redis refusing writes (out of memory, a replica): retried with the batch, the
            // message still parked. Anything else (a key of the wrong type under the prefix):
            // the message is still let go, or it would come back for ever.
            if let refusal = Commit.refusal(in: error) { throw refusal }
            context.logger.error("\(name): refusing an oversized message failed; dropped", metadata: ["error": "\(error)"])
            _ = try Commit.apply([Commit(acknowledgingHeldIn: oversized)], on: connection)
        default:
            break  // taken over by recovery meanwhile: its refusal is theirs to write
        }
    }

    private static func batch(from reply: RedisReply) -> [[UInt8]] {
        (reply.array ?? []).compactMap(\.bytes)
    }
}
