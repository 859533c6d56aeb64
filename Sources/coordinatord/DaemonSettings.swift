import ArgumentParser
import Coordination
import CoordinatorDaemon
import Foundation

extension DaemonOptions {
    /// One flag of `run` (PROTOCOL.md section 8): the variable it falls back to, `COORD_<name>`,
    /// and how its value sets the configuration. A flag given on the command line wins.
    struct Setting {
        let name: String
        let given: (DaemonOptions) -> String?
        let apply: (Reading, inout DaemonConfiguration) throws -> Void

        init(_ name: String, _ given: @escaping (DaemonOptions) -> String?,
             _ apply: @escaping (Reading, inout DaemonConfiguration) throws -> Void) {
            self.name = name
            self.given = given
            self.apply = apply
        }

        /// A flag ArgumentParser already read as a number: its text reads back as the same number.
        init<T: LosslessStringConvertible>(_ name: String, number given: @escaping (DaemonOptions) -> T?,
                                           _ apply: @escaping (T, inout DaemonConfiguration) throws -> Void) {
            self.init(name, { given($0).map(\.description) }) { reading, config in
                guard let value = T(reading.text) else {
                    throw ValidationError("COORD_\(name): cannot read \"\(reading.text)\"")
                }
                try apply(value, &config)
            }
        }

        func reading(_ options: DaemonOptions, _ environment: [String: String]) throws -> Reading? {
            if let text = given(options) { return Reading(text: text) }
            return Environment.value("COORD_" + name, in: environment).map(Reading.init)
        }
    }

    /// A setting's value as text, from its flag or its variable.
    struct Reading {
        let text: String
    }

    /// The value `v` names; otherwise "`flag`: unknown value "v" (`choices`)".
    static func choice<T: RawRepresentable<String>>(_ v: Reading, _ flag: String, _ choices: String) throws -> T {
        guard let value = T(rawValue: v.text) else { throw ValidationError("\(flag): unknown value \"\(v.text)\" (\(choices))") }
        return value
    }

    /// `v` when `range` holds it; otherwise "`flag`: must be between a and b".
    static func between(_ v: Int, _ flag: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(v) else { throw ValidationError("\(flag): must be between \(range.lowerBound) and \(range.upperBound)") }
        return v
    }

    /// Every flag of `run` but `--redis-url` (`REDIS_URL`), with its variable and its checks,
    /// in the order they are read (the first bad one is the error).
    static var settings: [Setting] { intakeSettings + runningSettings }

    /// The key prefix, the executor, and what intake and approvals take.
    private static var intakeSettings: [Setting] {
        [
            Setting("PREFIX", \.prefix) { v, config in
                guard !v.text.isEmpty, !v.text.contains(where: { $0 == " " || $0 == "*" }) else {
                    throw ValidationError("--prefix: must be non-empty, without spaces or '*'")
                }
                config.prefix = v.text
            },
            Setting("EXECUTOR", \.executor) { v, config in config.executor = try choice(v, "--executor", "agents or simulated") },
            Setting("SIM_SPEED", number: \.simSpeed) { v, config in
                config.simSpeed = try finite(v, "--sim-speed", 0...1000, "a multiplier between 0 and 1000")
            },
            Setting("WORKERS", number: \.workers) { v, config in
                config.workers = try between(v, "--workers", 1...64)
            },
            Setting("STEP_TIMEOUT", number: \.stepTimeout) { v, config in
                config.stepTimeout = try finite(v, "--step-timeout", 0.001...maxDuration, "seconds, more than 0 and at most 3650 days")
            },
            Setting("REPLY_TTL", \.replyTtl) { v, config in config.replyTTL = try seconds(v.text, "--reply-ttl") },
            Setting("DEDUPE_TTL", \.dedupeTtl) { v, config in config.dedupeTTL = try seconds(v.text, "--dedupe-ttl") },
            // Redis refuses a bulk string over 512 MiB (proto-max-bulk-len).
            Setting("MAX_MESSAGE_BYTES", number: \.maxMessageBytes) { v, config in
                config.maxMessageBytes = try bounded(v, "--max-message-bytes", 1...(256 << 20))
            },
            Setting("MAX_RECOMMENDATIONS", number: \.maxRecommendations) { v, config in
                config.maxRecommendations = try bounded(v, "--max-recommendations", 1...1_000_000)
            },
            Setting("MAX_RESOURCES", number: \.maxResources) { v, config in
                config.maxResources = try bounded(v, "--max-resources", 1...WireLimits.requestMaxResources)
            },
            Setting("MEDIUM_POLICY", \.mediumPolicy) { v, config in
                config.policy.mediumPolicy = try choice(v, "--medium-policy", "approve or notify")
            },
            Setting("APPROVERS", \.approvers) { v, config in
                let list = v.text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                config.policy.approvers = list.isEmpty ? nil : Set(list)
            },
            Setting("CRITICAL_APPROVERS", number: \.criticalApprovers) { v, config in
                config.policy.criticalApprovers = try between(v, "--critical-approvers", 1...10)
            },
            Setting("APPROVAL_EXPIRY", \.approvalExpiry) { v, config in
                do {
                    config.policy.expiry = try ApprovalPolicy.parseExpiry(v.text, defaults: config.policy.expiry)
                } catch {
                    throw ValidationError("--approval-expiry: \(error)")
                }
            },
        ]
    }

    /// Plans, leases, retention, the bounds of what is kept, trust, metrics and the cluster.
    private static var runningSettings: [Setting] {
        [
            Setting("MAX_CONCURRENT_PLANS", number: \.maxConcurrentPlans) { v, config in
                config.maxConcurrentPlans = try bounded(v, "--max-concurrent-plans", 1...100_000)
            },
            Setting("PLAN_WORKERS", number: \.planWorkers) { v, config in
                config.planWorkers = try between(v, "--plan-workers", 1...64)
            },
            Setting("PLAN_BACKLOG", number: \.planBacklog) { v, config in
                config.planBacklog = try bounded(v, "--plan-backlog", 0...10_000_000)
            },
            Setting("LOG_FORMAT", \.logFormat) { v, config in config.logFormat = try choice(v, "--log-format", "text or json") },
            Setting("PLAN_LEASE", number: \.planLease) { v, config in
                config.planLease = try finite(v, "--plan-lease", 1...86_400, "seconds between 1 and 86400")
            },
            Setting("HEARTBEAT_TTL", number: \.heartbeatTtl) { v, config in
                config.heartbeatTTL = try finite(v, "--heartbeat-ttl", 1...86_400, "seconds between 1 and 86400")
            },
            Setting("BATCH_SIZE", number: \.batchSize) { v, config in
                config.batchSize = try between(v, "--batch-size", 1...1000)
            },
            Setting("EVENT_STREAM_MAXLEN", number: \.eventStreamMaxlen) { v, config in
                config.eventStreamMaxLength = try bounded(v, "--event-stream-maxlen", 1...100_000_000)
            },
            Setting("RETENTION", \.retention) { v, config in config.retention = try seconds(v.text, "--retention") },
            Setting("PLAN_HOLD", \.planHold) { v, config in config.planHold = try seconds(v.text, "--plan-hold") },
            Setting("REPLY_PREFIX", \.replyPrefix) { v, config in
                guard !v.text.isEmpty, v.text.utf8.count <= 128, v.text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw ValidationError("--reply-prefix: 1 to 128 bytes of printable ASCII without spaces")
                }
                config.replyPrefix = v.text
            },
            Setting("REPLY_MAX", number: \.replyMax) { v, config in
                config.replyMax = try bounded(v, "--reply-max", 1...100_000_000)
            },
            Setting("DEAD_LETTER_MAX", number: \.deadLetterMax) { v, config in
                config.deadLetterMax = try bounded(v, "--dead-letter-max", 1...100_000_000)
            },
            Setting("DEAD_LETTER_RAW_MAX", number: \.deadLetterRawMax) { v, config in
                config.deadLetterRawMax = try bounded(v, "--dead-letter-raw-max", 64...(16 << 20))
            },
            Setting("MAX_DELIVERIES", number: \.maxDeliveries) { v, config in
                config.maxDeliveries = try between(v, "--max-deliveries", 1...1000)
            },
            Setting("TRUST", \.trust) { v, config in config.trustFile = v.text },
            Setting("SIGNATURE_MAX_AGE", \.signatureMaxAge) { v, config in
                let seconds = try seconds(v.text, "--signature-max-age")
                // Seen signatures are kept this long: a day at most keeps that memory bounded.
                guard seconds <= 86_400 else { throw ValidationError("--signature-max-age: \"\(v.text)\" is over 1d") }
                config.signatureMaxAge = seconds
            },
            Setting("METRICS_PORT", number: \.metricsPort) { v, config in
                config.metricsPort = try between(v, "--metrics-port", 0...65535)
            },
            Setting("METRICS_HOST", \.metricsHost) { v, config in config.metricsHost = v.text },
            Setting("CLUSTER", { $0.cluster ? "1" : nil }) { v, config in
                guard let on = ["1": true, "true": true, "yes": true, "0": false, "false": false, "no": false][v.text.lowercased()] else {
                    throw ValidationError("COORD_CLUSTER: \"\(v.text)\" is not 1 or 0")
                }
                config.cluster = on
            },
            Setting("PARTITIONS", number: \.partitions) { v, config in
                config.partitions = try between(v, "--partitions", 1...16384)
            },
            Setting("MIN_REPLICAS_ACKED", number: \.minReplicasAcked) { v, config in
                config.minReplicasAcked = try between(v, "--min-replicas-acked", 0...16)
            },
        ]
    }
}
