import ArgumentParser
import Coordination
import Foundation

/// `coordinatord-bench engine`: times the pure coordination engine on one `coordinate` request:
/// decoding and validation, the engine, and encoding of the response.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Time decode + coordinate + encode of one coordinate request; prints one JSON line.",
        discussion: """
            engine [run] --input FILE [--runs R]
                Reads one coordinate request (the JSON of PROTOCOL.md section 2.2) and runs it R times.
            engine [run] --count N [--resources P] [--dependency-rate D] [--seed S] [--runs R]
                Generates the request in memory instead (as `engine generate` would) and encodes it
                to bytes first, so decoding is timed the same way.
            engine generate --count N [--resources P] [--dependency-rate D] [--seed S] --output FILE
                Writes a generated request: random agents, types and actions (the seed's
                contradictory pairs included), 1-4 affected resources from a pool of P, mixed risk,
                priorities 1-10, savings, confidence, and with probability D a dependency on an
                earlier recommendation (so no cycles).

            Encoding uses WireJSON.encode(_:), the hand-written writer that spells the response as
            WireJSON.encoder() does.

            Output: {"n","conflicts_detected","conflicts_resolved","kept","approvals_required",
            "auto_approved","decode_ms","engine_ms","encode_ms","best_ms","median_ms","release_ms",
            "min_decode_ms","min_engine_ms","min_encode_ms"}; the three phases are medians over
            the runs, best and median are of their sum per run.
            release_ms (median) is freeing the request, the outcome and the encoded bytes after the
            three phases, which no phase includes. min_decode_ms, min_engine_ms, min_encode_ms: the
            fastest run of each phase (steadier than medians on a busy machine).
            """,
        subcommands: [EngineRun.self, EngineGenerate.self],
        defaultSubcommand: EngineRun.self
    )
}

/// How a request is generated.
struct GeneratorOptions: ParsableArguments {
    @Option(help: "Recommendations to generate.")
    var count: Int?

    @Option(help: "Size of the resource pool (default: the count, which gives a few conflicts per recommendation).")
    var resources: Int?

    @Option(help: "Probability that a recommendation depends on an earlier one.")
    var dependencyRate = 0.1

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    func validateRanges() throws {
        if let count, count < 0 { throw ValidationError("--count must not be negative") }
        if let resources, resources < 1 { throw ValidationError("--resources must be at least 1") }
        if !(0...1).contains(dependencyRate) { throw ValidationError("--dependency-rate must be between 0 and 1") }
    }

    func request(count: Int) -> CoordinationRequest {
        RequestGenerator(count: count, resources: resources ?? max(1, count), dependencyRate: dependencyRate, seed: seed).request()
    }
}

struct EngineRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Time one request (the default).")

    @Option(help: "A coordinate request to time.")
    var input: String?

    @Option(help: "Timed runs.")
    var runs = 5

    @OptionGroup var generator: GeneratorOptions

    func validate() throws {
        try generator.validateRanges()
        if (input == nil) == (generator.count == nil) { throw ValidationError("give exactly one of --input FILE and --count N") }
        if runs < 1 { throw ValidationError("--runs must be at least 1") }
    }

    func run() throws {
        let bytes: [UInt8]
        if let input {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: input)))
        } else {
            bytes = Array(try WireJSON.encoder().encode(generator.request(count: generator.count ?? 0)))
        }
        // Lists up to 10,000 conflicts (the daemon lists 1,000): the figures in docs/BENCHMARKS.md were
        // measured so, and the listing is part of the work being timed.
        var configuration = EngineConfiguration()
        configuration.maxListedConflicts = 10_000
        let coordinator = Coordinator(configuration: configuration)
        var decode: [Double] = [], engine: [Double] = [], encode: [Double] = [], total: [Double] = [], release: [Double] = []
        var counts: [(String, Int)] = []
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            var request: CoordinationRequest? = try RequestDecoding.coordinationRequest(from: bytes)
            let t1 = DispatchTime.now().uptimeNanoseconds
            var ids = UUIDGenerator()
            var outcome: CoordinationOutcome? = coordinator.coordinate(request!, active: [], now: Date(), ids: &ids)
            let t2 = DispatchTime.now().uptimeNanoseconds
            var encoded: Data? = WireJSON.encode(outcome!.response)
            let t3 = DispatchTime.now().uptimeNanoseconds
            precondition(!encoded!.isEmpty)
            let response = outcome!.response
            counts = [
                ("n", response.totalRecommendations), ("conflicts_detected", response.conflictsDetected),
                ("conflicts_resolved", response.conflictsResolved), ("kept", response.recommendationsKept),
                ("approvals_required", response.approvalsRequired), ("auto_approved", response.autoApproved),
            ]
            // Request, outcome and bytes are freed here, after the three phases and timed on their
            // own: left to the optimizer, the request would be freed as soon as the engine
            // returns, inside `engine_ms`, and the response after `encode_ms`.
            let t4 = DispatchTime.now().uptimeNanoseconds
            request = nil
            outcome = nil
            encoded = nil
            let t5 = DispatchTime.now().uptimeNanoseconds
            withExtendedLifetime((request, outcome, encoded)) {}
            func ms(_ a: UInt64, _ b: UInt64) -> Double { Double(b - a) / 1e6 }
            decode.append(ms(t0, t1))
            engine.append(ms(t1, t2))
            encode.append(ms(t2, t3))
            total.append(ms(t0, t3))
            release.append(ms(t4, t5))
        }
        guard !counts.isEmpty else { return }
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            let mid = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        }
        func f(_ value: Double) -> String { String(format: "%.3f", value) }
        let fields: [(String, String)] = counts.map { ($0.0, "\($0.1)") } + [
            ("decode_ms", f(median(decode))),
            ("engine_ms", f(median(engine))),
            ("encode_ms", f(median(encode))),
            ("best_ms", f(total.min() ?? 0)),
            ("median_ms", f(median(total))),
            ("release_ms", f(median(release))),
            ("min_decode_ms", f(decode.min() ?? 0)),
            ("min_engine_ms", f(engine.min() ?? 0)),
            ("min_encode_ms", f(encode.min() ?? 0)),
        ]
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
    }
}

struct EngineGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Write a generated coordinate request to a file.")

    @OptionGroup var generator: GeneratorOptions

    @Option(help: "Where to write the request.")
    var output: String

    func validate() throws {
        try generator.validateRanges()
        if generator.count == nil { throw ValidationError("--count is required") }
    }

    func run() throws {
        let data = try WireJSON.encoder().encode(generator.request(count: generator.count ?? 0))
        try data.write(to: URL(fileURLWithPath: output))
    }
}

/// A realistic `coordinate` request, reproducible from its seed.
struct RequestGenerator {
    var count: Int
    var resources: Int
    var dependencyRate: Double
    var seed: UInt64

    static let agents: [(id: String, type: RecommendationType)] = [
        ("cost-agent-1", .cost), ("cost-agent-2", .cost), ("cost-agent-3", .cost),
        ("perf-agent-1", .performance), ("perf-agent-2", .performance),
        ("resource-agent-1", .resource), ("resource-agent-2", .resource),
        ("app-agent-1", .application),
    ]

    /// Actions by type; each contradictory pair of the seed's table appears.
    static let actions: [RecommendationType: [String]] = [
        .cost: ["migrate_to_spot", "reserve_instances", "migrate_to_on_demand", "terminate", "rightsize", "delete_snapshot"],
        .performance: ["scale_up", "add_capacity", "enable_caching", "migrate_database", "increase_batch_size"],
        .resource: ["scale_down", "scale_up", "terminate", "add_capacity", "tune_autoscaling"],
        .application: ["disable_caching", "enable_caching", "decrease_batch_size", "increase_batch_size", "restart_service"],
    ]

    static let impacts = ["none", "under a minute of downtime", "2-3 minutes downtime", "slower deploys", "reduced headroom"]

    func request() -> CoordinationRequest {
        var rng = SplitMix64(seed: seed)
        let customer = "cust-bench"
        let created = Date(timeIntervalSince1970: 1_795_515_330)
        var recs: [Recommendation] = []
        recs.reserveCapacity(count)
        for index in 0..<count {
            let agent = Self.agents[Int(rng.below(UInt64(Self.agents.count)))]
            let actions = Self.actions[agent.type]!
            let action = actions[Int(rng.below(UInt64(actions.count)))]
            var affected: [String] = []
            for _ in 0...rng.below(4) {
                let name = "i-\(rng.below(UInt64(resources)))"
                if !affected.contains(name) { affected.append(name) }
            }
            let roll = rng.unit()
            let risk: RiskLevel = roll < 0.5 ? .low : roll < 0.75 ? .medium : roll < 0.9 ? .high : .critical
            var dependencies: [String] = []
            if index > 0 && rng.unit() < dependencyRate { dependencies.append("rec-\(rng.below(UInt64(index)))") }
            let savings = Double(rng.below(1_000_000)) / 100
            let confidence = 0.5 + Double(rng.below(51)) / 100
            recs.append(Recommendation(
                id: "rec-\(index)", agentID: agent.id, agentType: agent.type.rawValue, customerID: customer,
                type: agent.type, title: "\(action) on \(affected.count) resource(s)",
                description: "Generated recommendation \(index): \(action) for \(affected.joined(separator: ", "))",
                action: action, riskLevel: risk, estimatedSavings: savings,
                estimatedImpact: Self.impacts[Int(rng.below(UInt64(Self.impacts.count)))],
                affectedResources: affected,
                parameters: ["region": .string(["eu-west-1", "us-east-1", "ap-south-1"][Int(rng.below(3))]),
                             "batch": .number(Double(rng.below(100)))],
                dependencies: dependencies, priority: 1 + Int(rng.below(10)), confidence: confidence,
                createdAt: created))
        }
        return CoordinationRequest(customerID: customer, recommendations: recs, autoApprove: true, executeNow: false)
    }
}
