import ArgumentParser
import Coordination
import CoordinatorDaemon
import Foundation

/// The flags of PROTOCOL.md section 8. Each also reads `COORD_<FLAG>` from the environment
/// (`REDIS_URL` for the URL); a flag given on the command line wins.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Redis URL: redis://[user:password@]host:port/db or unix:///path (env REDIS_URL).")
    var redisURL: String?
    @Option(help: "Key prefix (env COORD_PREFIX).") var prefix: String?
    @Option(help: "Step executor: agents or simulated (env COORD_EXECUTOR).") var executor: String?
    @Option(help: "Simulated durations multiplier: 1 as in the seed, 0 instant (env COORD_SIM_SPEED).") var simSpeed: Double?
    @Option(help: "Request intake loops in this process (env COORD_WORKERS).") var workers: Int?
    @Option(help: "Seconds an agent has to answer a step (env COORD_STEP_TIMEOUT).") var stepTimeout: Double?
    @Option(help: "How long a reply list lives, e.g. 3600 or 1h (env COORD_REPLY_TTL).") var replyTtl: String?
    @Option(help: "How long a request_id is remembered, e.g. 86400 or 24h (env COORD_DEDUPE_TTL).") var dedupeTtl: String?
    @Option(help: "Largest message accepted (env COORD_MAX_MESSAGE_BYTES).") var maxMessageBytes: Int?
    @Option(help: "Most recommendations in one request (env COORD_MAX_RECOMMENDATIONS).") var maxRecommendations: Int?
    @Option(help: "Most affected resources in one recommendation; a request holds at most 10000 in all (env COORD_MAX_RESOURCES).") var maxResources: Int?
    @Option(help: "Medium risk: approve (a person approves) or notify (approved at once) (env COORD_MEDIUM_POLICY).") var mediumPolicy: String?
    @Option(help: "Comma-separated allow-list of approvers; empty for anyone (env COORD_APPROVERS).") var approvers: String?
    @Option(help: "Distinct approvers a critical recommendation needs (env COORD_CRITICAL_APPROVERS).") var criticalApprovers: Int?
    @Option(help: "Approval expiry per risk, e.g. low=7d,medium=48h,high=24h,critical=4h (env COORD_APPROVAL_EXPIRY).") var approvalExpiry: String?
    @Option(help: "Plans run at once by this process (env COORD_MAX_CONCURRENT_PLANS).") var maxConcurrentPlans: Int?
    @Option(help: "Plan execution loops in this process, sharing --max-concurrent-plans (env COORD_PLAN_WORKERS).") var planWorkers: Int?
    @Option(help: "Take no new requests while more plans than this wait for an executor; 0 never pauses (env COORD_PLAN_BACKLOG).") var planBacklog: Int?
    @Option(help: "Log format: text or json (env COORD_LOG_FORMAT).") var logFormat: String?
    @Option(help: "Seconds a plan lease lasts without renewal (env COORD_PLAN_LEASE).") var planLease: Double?
    @Option(help: "Seconds a heartbeat lasts without renewal (env COORD_HEARTBEAT_TTL).") var heartbeatTtl: Double?
    @Option(help: "Messages taken from a queue at once when a backlog builds (env COORD_BATCH_SIZE).") var batchSize: Int?
    @Option(help: "Approximate length the event stream is capped at (env COORD_EVENT_STREAM_MAXLEN).") var eventStreamMaxlen: Int?
    @Option(help: "How long finished plans, approvals and records are kept, e.g. 7d (env COORD_RETENTION).") var retention: String?
    @Option(help: "How long an approved plan may wait to be started before it is cancelled, e.g. 7d (env COORD_PLAN_HOLD).") var planHold: String?
    @Option(help: "Every reply_to must start with this (env COORD_REPLY_PREFIX).") var replyPrefix: String?
    @Option(help: "Replies a reply list keeps, newest first (env COORD_REPLY_MAX).") var replyMax: Int?
    @Option(help: "Dead letters kept, newest first (env COORD_DEAD_LETTER_MAX).") var deadLetterMax: Int?
    @Option(help: "Bytes of a raw message kept in its dead letter (env COORD_DEAD_LETTER_RAW_MAX).") var deadLetterRawMax: Int?
    @Option(help: "Deliveries of one message before it is dead-lettered as poison (env COORD_MAX_DELIVERIES).") var maxDeliveries: Int?
    @Option(help: "Trust file: principals, their keys and roles, risk floor (env COORD_TRUST).") var trust: String?
    @Option(help: "Oldest signing time (iat) a signed message may carry, e.g. 300s or 5m (env COORD_SIGNATURE_MAX_AGE).") var signatureMaxAge: String?
    @Option(help: "Port of the Prometheus /metrics endpoint; 0 serves none (env COORD_METRICS_PORT).") var metricsPort: Int?
    @Option(help: "Address the metrics endpoint binds (env COORD_METRICS_HOST).") var metricsHost: String?
    @Flag(help: "Run on a Redis Cluster; the URL names a seed node (env COORD_CLUSTER=1; a redis+cluster:// URL implies it).") var cluster = false
    @Option(help: "Partitions of the state on a cluster, fixed for a deployment's life (env COORD_PARTITIONS).") var partitions: Int?
    @Option(help: "On a cluster, replicas a commit must reach before its replies and steps leave the outboxes (env COORD_MIN_REPLICAS_ACKED).") var minReplicasAcked: Int?

    func configuration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfiguration {
        var config = DaemonConfiguration()
        if let url = redisURL ?? Environment.value("REDIS_URL", in: environment) { config.redisURL = url }
        for setting in Self.settings {
            if let reading = try setting.reading(self, environment) { try setting.apply(reading, &config) }
        }
        if config.isCluster {
            config.cluster = true
        }
        do {
            _ = try config.redis
        } catch {
            throw ValidationError("--redis-url: \(error)")
        }
        return config
    }

    /// A duration flag: a number with a unit (s, m, h, d; seconds without one), whole seconds,
    /// at least one second and at most ten years.
    static func seconds(_ text: String, _ flag: String) throws -> Int {
        guard let v = ApprovalPolicy.duration(text), v.isFinite, v >= 1, v <= 10 * 365 * 86_400 else {
            throw ValidationError("\(flag): \"\(text)\" is not a duration between 1s and 3650d (units s, m, h, d)")
        }
        return Int(v.rounded())
    }

    /// The longest duration any flag takes: ten years.
    static let maxDuration: Double = 10 * 365 * 86_400

    /// A `Double` flag: finite (`inf` and `nan` parse as numbers) and within `range`.
    static func finite(_ v: Double, _ flag: String, _ range: ClosedRange<Double>, _ what: String) throws -> Double {
        guard v.isFinite, range.contains(v) else { throw ValidationError("\(flag): \(v) is not \(what)") }
        return v
    }

    static func bounded(_ v: Int, _ flag: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(v) else { throw ValidationError("\(flag): \(v) is not between \(range.lowerBound) and \(range.upperBound)") }
        return v
    }
}
