import Coordination
import Foundation
import Logging
import RedisClient

/// What every loop of one daemon shares: configuration, key layout, identity, logger and the
/// writers of replies, dead letters and events.
final class DaemonContext: Sendable {
    let configuration: DaemonConfiguration
    let redis: RedisConfiguration
    let keys: Keys
    /// Unique per process: host, pid and a random suffix, so a restarted daemon never
    /// mistakes a predecessor's in-flight lists for its own.
    let workerID: String
    let logger: Logger
    let events: EventEmitter
    /// The named state changes (the only writer of Redis state besides the scripts).
    let store: Store
    /// The trust file (`--trust`): signatures, roles, risk floor. A bad file stops start-up.
    let trust: Trust
    let counters = Counters()
    /// Whether Redis takes this daemon's writes (`coordinatord_up`).
    let health = RedisHealth()
    /// Prometheus metrics (section 7); every hook is a no-op with `--metrics-port 0`.
    let metrics: DaemonMetrics
    let startedAt = Date()
    /// Set once the first heartbeat is written. The loops take no message before it: a daemon
    /// that died before its first beat would not be in `workers`, and recovery would never
    /// find what it held in flight.
    let announced = Flag()
    /// On a cluster, the partition these loops serve (nil on one Redis, and for the daemon's
    /// own context there): its keys, the master holding its slot, its id prefix and outbox.
    let partition: PartitionRole?

    /// `metrics`: the set to record into (a partition's loops record into their daemon's).
    init(configuration: DaemonConfiguration, logger: Logger, partition: PartitionRole? = nil,
         metrics: DaemonMetrics? = nil) throws {
        self.configuration = configuration
        self.partition = partition
        self.redis = try partition?.redis ?? configuration.redis
        self.keys = partition?.keys ?? Keys(prefix: configuration.prefix)
        let host = ProcessInfo.processInfo.hostName
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.workerID = partition?.workerID ?? "\(host)-\(getpid())-\(suffix)"
        self.logger = logger
        self.events = EventEmitter(keys: keys, streamMaxLength: configuration.eventStreamMaxLength)
        self.store = Store(keys: keys, configuration: configuration, events: events, outbox: partition?.keys.outbox)
        self.metrics = metrics ?? DaemonMetrics(enabled: configuration.metricsPort != 0)
        self.trust = try configuration.trustFile.map { path throws(TrustFileError) in try Trust.load(path: path) } ?? .none
    }

    /// A new connection with this daemon's scripts registered (reloaded on NOSCRIPT).
    func connect() throws(RedisError) -> RedisConnection {
        let connection = try RedisConnection(configuration: redis)
        for script in Scripts.all { connection.register(script) }
        return connection
    }

    /// Exactly one reply per request, on its `reply_to` list, which then lives `--reply-ttl`.
    /// Sends `reply` to `replyTo` (if any); with `dedupe`, also stores it (with `replyTo`) for
    /// re-delivery, for `dedupeTTL` seconds (`--dedupe-ttl` by default). A reply that cannot be
    /// written leaves the commit `.appliedReplyUndeliverable`; see `undeliverable`.
    func reply(_ reply: [UInt8], to replyTo: String?, dedupe: String? = nil, dedupeTTL: Int? = nil,
               in commit: inout Commit) {
        if let partition {
            partition.reply(reply, to: replyTo, dedupe: dedupe.map { ($0, dedupeTTL ?? configuration.dedupeTTL) }, in: &commit)
            return
        }
        commit.reply(reply, to: replyTo, ttl: configuration.replyTTL,
                     dedupe: dedupe.map { ($0, dedupeTTL ?? configuration.dedupeTTL) },
                     keeping: Commit.ReplyList(max: configuration.replyMax, always: configuration.replyPrefix != nil))
    }

    /// The `reply_undeliverable` dead letters of messages whose commits applied but whose
    /// replies Redis refused (`Commit.Result.appliedReplyUndeliverable`), written at once.
    func deadLetterUndeliverable(_ refused: [(raw: [UInt8], replyTo: String, error: String)], queue: String, now: Date,
                                 connection: RedisConnection) throws(RedisError) {
        guard !refused.isEmpty else { return }
        let letters = refused.map { message -> Commit in
            var commit = Commit()
            deadLetter(message.raw, queue: queue,
                       failure: Refusal(.replyUndeliverable, "reply_to \(WireLimits.quoted(message.replyTo)): \(message.error)"),
                       now: now, in: &commit)
            return commit
        }
        _ = try Commit.apply(letters, on: connection)
        metrics.deadLettered(code: ErrorCode.replyUndeliverable.rawValue, count: letters.count)
        logger.warning("replies could not be written; dead-lettered as reply_undeliverable",
                       metadata: ["queue": "\(queue)", "count": "\(letters.count)", "error": "\(refused[0].error)"])
    }

    /// Appends a dead letter (the list capped at `--dead-letter-max`, in the same commit).
    /// `wholeBytes`: `raw` is only the first bytes of a message that long, never read whole.
    func deadLetter(_ raw: [UInt8], queue: String, failure: Refusal, now: Date, wholeBytes: Int? = nil, in commit: inout Commit) {
        commit.deadLetter(deadLetterEntry(raw, queue: queue, failure: failure, now: now, wholeBytes: wholeBytes),
                          to: keys.dead, max: configuration.deadLetterMax)
    }

    /// A dead letter as appended to `coord:dead` (by a commit, or by a change script that
    /// takes it whole), counted for the heartbeat.
    func deadLetterEntry(_ raw: [UInt8], queue: String, failure: Refusal, now: Date, wholeBytes: Int? = nil) -> [UInt8] {
        counters.add(deadLettered: 1)
        return WireMessages.deadLetter(queue: queue, raw: raw, failure: failure, at: now,
                                       rawMax: configuration.deadLetterRawMax, wholeBytes: wholeBytes)
    }
}

/// Counts reported in the heartbeat.
final class Counters: @unchecked Sendable {
    private let lock = NSLock()
    private var processed = 0
    private var deadLettered = 0
    private var plansFinished = 0

    func add(processed: Int = 0, deadLettered: Int = 0, plansFinished: Int = 0) {
        lock.lock()
        self.processed += processed
        self.deadLettered += deadLettered
        self.plansFinished += plansFinished
        lock.unlock()
    }

    var snapshot: (processed: Int, deadLettered: Int, plansFinished: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (processed, deadLettered, plansFinished)
    }
}
