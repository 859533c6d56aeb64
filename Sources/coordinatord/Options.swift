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

    func configuration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfiguration {
        func value(_ flag: String?, _ name: String) -> String? {
            if let flag { return flag }
            let env = environment["COORD_" + name]
            return env?.isEmpty == false ? env : nil
        }
        func parsed<T>(_ flag: T?, _ name: String, _ convert: (String) -> T?) throws -> T? {
            if let flag { return flag }
            guard let text = value(nil, name) else { return nil }
            guard let converted = convert(text) else {
                throw ValidationError("COORD_\(name): cannot read \"\(text)\"")
            }
            return converted
        }

        var config = DaemonConfiguration()
        if let url = redisURL ?? environment["REDIS_URL"].flatMap({ $0.isEmpty ? nil : $0 }) { config.redisURL = url }
        if let v = value(prefix, "PREFIX") {
            guard !v.isEmpty, !v.contains(where: { $0 == " " || $0 == "*" }) else { throw ValidationError("--prefix: must be non-empty, without spaces or '*'") }
            config.prefix = v
        }
        if let v = value(executor, "EXECUTOR") {
            guard let e = DaemonConfiguration.Executor(rawValue: v) else { throw ValidationError("--executor: unknown value \"\(v)\" (agents or simulated)") }
            config.executor = e
        }
        if let v = try parsed(simSpeed, "SIM_SPEED", Double.init) {
            config.simSpeed = try Self.finite(v, "--sim-speed", 0...1000, "a multiplier between 0 and 1000")
        }
        if let v = try parsed(workers, "WORKERS", Int.init) {
            guard (1...64).contains(v) else { throw ValidationError("--workers: must be between 1 and 64") }
            config.workers = v
        }
        if let v = try parsed(stepTimeout, "STEP_TIMEOUT", Double.init) {
            config.stepTimeout = try Self.finite(v, "--step-timeout", 0.001...Self.maxDuration, "seconds, more than 0 and at most 3650 days")
        }
        if let v = value(replyTtl, "REPLY_TTL") { config.replyTTL = try Self.seconds(v, "--reply-ttl") }
        if let v = value(dedupeTtl, "DEDUPE_TTL") { config.dedupeTTL = try Self.seconds(v, "--dedupe-ttl") }
        // Redis refuses a bulk string over 512 MiB (proto-max-bulk-len).
        if let v = try parsed(maxMessageBytes, "MAX_MESSAGE_BYTES", Int.init) { config.maxMessageBytes = try bounded(v, "--max-message-bytes", 1...(256 << 20)) }
        if let v = try parsed(maxRecommendations, "MAX_RECOMMENDATIONS", Int.init) { config.maxRecommendations = try bounded(v, "--max-recommendations", 1...1_000_000) }
        if let v = try parsed(maxResources, "MAX_RESOURCES", Int.init) { config.maxResources = try bounded(v, "--max-resources", 1...WireLimits.requestMaxResources) }
        if let v = value(mediumPolicy, "MEDIUM_POLICY") {
            guard let p = MediumPolicy(rawValue: v) else { throw ValidationError("--medium-policy: unknown value \"\(v)\" (approve or notify)") }
            config.policy.mediumPolicy = p
        }
        if let v = value(approvers, "APPROVERS") {
            let list = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            config.policy.approvers = list.isEmpty ? nil : Set(list)
        }
        if let v = try parsed(criticalApprovers, "CRITICAL_APPROVERS", Int.init) {
            guard (1...10).contains(v) else { throw ValidationError("--critical-approvers: must be between 1 and 10") }
            config.policy.criticalApprovers = v
        }
        if let v = value(approvalExpiry, "APPROVAL_EXPIRY") {
            do {
                config.policy.expiry = try ApprovalPolicy.parseExpiry(v, defaults: config.policy.expiry)
            } catch {
                throw ValidationError("--approval-expiry: \(error)")
            }
        }
        if let v = try parsed(maxConcurrentPlans, "MAX_CONCURRENT_PLANS", Int.init) { config.maxConcurrentPlans = try bounded(v, "--max-concurrent-plans", 1...100_000) }
        if let v = value(logFormat, "LOG_FORMAT") {
            guard let f = DaemonConfiguration.LogFormat(rawValue: v) else { throw ValidationError("--log-format: unknown value \"\(v)\" (text or json)") }
            config.logFormat = f
        }
        if let v = try parsed(planLease, "PLAN_LEASE", Double.init) {
            config.planLease = try Self.finite(v, "--plan-lease", 1...86_400, "seconds between 1 and 86400")
        }
        if let v = try parsed(heartbeatTtl, "HEARTBEAT_TTL", Double.init) {
            config.heartbeatTTL = try Self.finite(v, "--heartbeat-ttl", 1...86_400, "seconds between 1 and 86400")
        }
        if let v = try parsed(batchSize, "BATCH_SIZE", Int.init) {
            guard (1...1000).contains(v) else { throw ValidationError("--batch-size: must be between 1 and 1000") }
            config.batchSize = v
        }
        if let v = try parsed(eventStreamMaxlen, "EVENT_STREAM_MAXLEN", Int.init) { config.eventStreamMaxLength = try bounded(v, "--event-stream-maxlen", 1...100_000_000) }
        if let v = value(retention, "RETENTION") { config.retention = try Self.seconds(v, "--retention") }
        if let v = value(planHold, "PLAN_HOLD") { config.planHold = try Self.seconds(v, "--plan-hold") }
        if let v = value(replyPrefix, "REPLY_PREFIX") {
            guard !v.isEmpty, v.utf8.count <= 128, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ValidationError("--reply-prefix: 1 to 128 bytes of printable ASCII without spaces")
            }
            config.replyPrefix = v
        }
        if let v = try parsed(replyMax, "REPLY_MAX", Int.init) { config.replyMax = try bounded(v, "--reply-max", 1...100_000_000) }
        if let v = try parsed(deadLetterMax, "DEAD_LETTER_MAX", Int.init) { config.deadLetterMax = try bounded(v, "--dead-letter-max", 1...100_000_000) }
        if let v = try parsed(deadLetterRawMax, "DEAD_LETTER_RAW_MAX", Int.init) { config.deadLetterRawMax = try bounded(v, "--dead-letter-raw-max", 64...(16 << 20)) }
        if let v = try parsed(maxDeliveries, "MAX_DELIVERIES", Int.init) {
            guard (1...1000).contains(v) else { throw ValidationError("--max-deliveries: must be between 1 and 1000") }
            config.maxDeliveries = v
        }
        if let v = value(trust, "TRUST") { config.trustFile = v }
        if let v = value(signatureMaxAge, "SIGNATURE_MAX_AGE") {
            let seconds = try Self.seconds(v, "--signature-max-age")
            // Seen signatures are kept this long: a day at most keeps that memory bounded.
            guard seconds <= 86_400 else { throw ValidationError("--signature-max-age: \"\(v)\" is over 1d") }
            config.signatureMaxAge = seconds
        }
        if let v = try parsed(metricsPort, "METRICS_PORT", Int.init) {
            guard (0...65535).contains(v) else { throw ValidationError("--metrics-port: must be between 0 and 65535") }
            config.metricsPort = v
        }
        if let v = value(metricsHost, "METRICS_HOST") { config.metricsHost = v }
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

    private func bounded(_ v: Int, _ flag: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(v) else { throw ValidationError("\(flag): \(v) is not between \(range.lowerBound) and \(range.upperBound)") }
        return v
    }
}
