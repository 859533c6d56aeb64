import Coordination
import Foundation
import RedisClient

/// Everything `coordinatord run` can be told, filled from flags, then `COORD_*` environment
/// variables, then defaults (PROTOCOL.md section 8).
public struct DaemonConfiguration: Sendable {
    public enum Executor: String, Sendable, CaseIterable { case simulated, agents }
    public enum LogFormat: String, Sendable, CaseIterable { case text, json }

    public var redisURL = "redis://127.0.0.1:6379/0"
    public var prefix = "coord"
    public var executor: Executor = .simulated
    public var simSpeed = 1.0
    /// Request intake loops in this process, each with its own connection and in-flight list.
    public var workers = 3
    public var stepTimeout: TimeInterval = 300
    public var replyTTL = 3600
    public var dedupeTTL = 86_400
    public var maxMessageBytes = 1_048_576
    public var maxRecommendations = 10_000
    /// Most affected resources one recommendation may list (a request lists at most
    /// `WireLimits.requestMaxResources` in all).
    public var maxResources = WireLimits.defaultMaxResources
    public var policy = ApprovalPolicy()
    public var maxConcurrentPlans = 64
    /// Plan execution lanes in this process, each with its own connection, in-flight lists
    /// and share of `maxConcurrentPlans`.
    public var planWorkers = 2
    /// Past this many plans waiting on the ready list for an executor, request workers take
    /// no new requests until it is down to three quarters of it (`PlanBacklog`); 0: never.
    public var planBacklog = 5_000
    public var logFormat: LogFormat = .text
    public var maxListedConflicts = EngineConfiguration.defaultMaxListedConflicts
    /// Messages taken from a queue in one go when a backlog has built.
    public var batchSize = 128
    /// How long a worker's heartbeat lives without renewal; past it, its in-flight messages
    /// and plans are taken over.
    public var heartbeatTTL: TimeInterval = 10
    public var planLease: TimeInterval = 10
    public var eventStreamMaxLength = 100_000
    /// Plans, approvals and recommendation records in a final state stay readable this long
    /// after they end (seconds, PROTOCOL.md section 9).
    public var retention = Retention.defaultSeconds
    /// An approved plan not started within this long of its creation is cancelled
    /// (`not_started`) and its recommendation leaves the active set (seconds, section 9).
    public var planHold = Retention.defaultPlanHoldSeconds
    /// When set, every `reply_to` must start with it (section 2.1).
    public var replyPrefix: String?
    /// A reply list keeps its newest this many replies (section 2.1): enough that a client
    /// that pushes a burst and reads afterwards loses none.
    public var replyMax = 100_000
    /// The dead-letter list keeps the newest this many entries (section 6).
    public var deadLetterMax = 100_000
    /// A dead letter keeps at most this many bytes of its raw message (section 6).
    public var deadLetterRawMax = 65_536
    /// A message delivered this many times without being finished is dead-lettered as `poison`.
    public var maxDeliveries = 5
    /// The trust file of section 10 (principals and risk floor); nil trusts every writer.
    public var trustFile: String?
    /// A signed message whose `iat` is older than this (seconds, by Redis's clock) is refused as
    /// expired; replays are recognised within it (section 10).
    public var signatureMaxAge = 300
    /// Prometheus `/metrics` port (section 7); 0 serves none.
    public var metricsPort = 0
    public var metricsHost = "127.0.0.1"
    /// Redis Cluster mode (`--cluster`, or a `redis+cluster://` URL; PROTOCOL.md section 11).
    public var cluster = false
    /// Partitions of the state on a cluster (`--partitions`), fixed for a deployment's life.
    public var partitions = Partitions.defaultCount
    /// On a cluster, replies leave the outbox only once their commit reached this many
    /// replicas (`WAIT`); 0 waits for none.
    public var minReplicasAcked = 0

    public init() {}

    public var redis: RedisConfiguration {
        get throws {
            let redis = try RedisConfiguration(url: redisURL)
            return cluster ? try redis.clustered() : redis
        }
    }

    /// Whether the daemon runs on a Redis Cluster (the flag, or the URL's scheme).
    public var isCluster: Bool { cluster || redisURL.hasPrefix("redis+cluster://") }

    public var engine: EngineConfiguration {
        var engine = EngineConfiguration(policy: policy)
        engine.maxListedConflicts = maxListedConflicts
        return engine
    }

    /// The configuration as printed at start-up: one line, secrets masked.
    public var summary: String {
        let url = (try? RedisConfiguration(url: redisURL).redactedURL) ?? "<invalid url>"
        let expiry = RiskLevel.allCases.map { "\($0.rawValue)=\(Int(policy.expiry[$0] ?? 0))s" }.joined(separator: ",")
        let approvers = policy.approvers.map { $0.sorted().joined(separator: ",") } ?? "anyone"
        return "redis_url=\(url) prefix=\(prefix) executor=\(executor.rawValue) sim_speed=\(simSpeed) "
            + "workers=\(workers) step_timeout=\(stepTimeout)s reply_ttl=\(replyTTL)s dedupe_ttl=\(dedupeTTL)s "
            + "max_message_bytes=\(maxMessageBytes) max_recommendations=\(maxRecommendations) max_resources=\(maxResources) "
            + "medium_policy=\(policy.mediumPolicy.rawValue) approvers=\(approvers) "
            + "critical_approvers=\(policy.criticalApprovers) approval_expiry=\(expiry) "
            + "max_concurrent_plans=\(maxConcurrentPlans) plan_workers=\(planWorkers) plan_backlog=\(planBacklog) log_format=\(logFormat.rawValue) "
            + "retention=\(retention)s plan_hold=\(planHold)s reply_prefix=\(replyPrefix ?? "none") reply_max=\(replyMax) "
            + "dead_letter_max=\(deadLetterMax) dead_letter_raw_max=\(deadLetterRawMax) max_deliveries=\(maxDeliveries) "
            + "trust=\(trustFile ?? "none") signature_max_age=\(signatureMaxAge)s metrics=\(metricsPort == 0 ? "off" : "\(metricsHost):\(metricsPort)")"
            + (isCluster ? " cluster=on partitions=\(partitions) min_replicas_acked=\(minReplicasAcked)" : "")
    }
}
