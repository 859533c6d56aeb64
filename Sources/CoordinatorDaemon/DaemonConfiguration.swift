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
    public var policy = ApprovalPolicy()
    public var maxConcurrentPlans = 64
    public var logFormat: LogFormat = .text
    public var maxListedConflicts = 1000
    /// Messages taken from a queue in one go when a backlog has built.
    public var batchSize = 128
    /// How long a worker's heartbeat lives without renewal; past it, its in-flight messages
    /// and plans are taken over.
    public var heartbeatTTL: TimeInterval = 10
    public var planLease: TimeInterval = 10
    public var eventStreamMaxLength = 100_000
    /// Terminal recommendations stay readable this long after they end.
    public var retention = 7 * 86_400

    public init() {}

    public var redis: RedisConfiguration {
        get throws { try RedisConfiguration(url: redisURL) }
    }

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
            + "max_message_bytes=\(maxMessageBytes) max_recommendations=\(maxRecommendations) "
            + "medium_policy=\(policy.mediumPolicy.rawValue) approvers=\(approvers) "
            + "critical_approvers=\(policy.criticalApprovers) approval_expiry=\(expiry) "
            + "max_concurrent_plans=\(maxConcurrentPlans) log_format=\(logFormat.rawValue)"
    }
}
