import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient
import TestSupport

/// End to end: producers push wire messages, daemons (the built `coordinatord` binary) do the
/// work, and the time from push to reply (or to `plan.completed`) is measured.
struct E2EBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Daemons over a real Redis: requests/s and latency, one JSON line per case.")

    @Option(help: "Use this Redis instead of starting one.") var url: String?
    @Option(help: "Daemon counts to run, comma-separated.") var daemons: String = "1,2"
    @Option(help: "Messages per case.") var requests: Int = 20000
    @Option(help: "Concurrent producers.") var producers: Int = 4
    @Option(help: "Cases: coordinate, coordinate-signed, approval, plans (comma-separated).") var cases: String = "coordinate,approval,plans"
    @Option(help: "Also measure latency when offered this fraction of the measured rate (0 to skip).") var paced: Double = 0.5
    @Option(help: "Spread requests over this many customers, round-robin (0: a new customer per request); N > 0 then also runs a case with a new customer per request, against the same fleet and history.") var customers: Int = 0
    @Option(help: "Before measuring, leave each of the --customers with this many active recommendations (pending approval).")
    var warmupActive: Int = 0
    @Option(name: .customLong("daemon-arg"), parsing: .unconditionalSingleValue,
            help: "An extra flag for every daemon, e.g. --daemon-arg=--metrics-port=0 (repeatable).")
    var daemonArgs: [String] = []
    @Option(help: "Where the daemons run, comma-separated: single (one redis-server), cluster (a local Redis Cluster of --masters masters without replicas, daemons under --cluster; coordinate only).")
    var redis: String = "single"
    @Option(help: "Run everything this many times, the --redis targets alternating (A B A B): the machine's speed drifts.")
    var rounds: Int = 1
    @Option(help: "Masters of the cluster (--redis cluster).") var masters: Int = 3
    @Option(help: "The daemons' --partitions on the cluster.") var partitions: Int = Partitions.defaultCount
    @Flag(help: "On the cluster, push each coordinate straight onto its customer's partition queue instead of coord:requests (no ingress).")
    var partitionPush = false

    func validate() throws {
        if customers < 0 || warmupActive < 0 { throw ValidationError("--customers and --warmup-active must not be negative") }
        if warmupActive > 0 && customers == 0 { throw ValidationError("--warmup-active needs --customers N (N > 0)") }
        if producers < 1 { throw ValidationError("--producers must be at least 1") }
        if rounds < 1 || masters < 1 || partitions < 1 { throw ValidationError("--rounds, --masters and --partitions must be at least 1") }
        for target in targets where target != "single" && target != "cluster" { throw ValidationError("unknown --redis \(target)") }
        if targets.contains("cluster") {
            if url != nil { throw ValidationError("--redis cluster starts its own cluster: no --url") }
            if cases.split(separator: ",").contains(where: { $0 != "coordinate" }) {
                throw ValidationError("--redis cluster runs the coordinate case only")
            }
        }
    }

    private var targets: [String] { redis.split(separator: ",").map(String.init) }

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        for round in 0..<rounds {
            for target in targets {
                for count in daemons.split(separator: ",").compactMap({ Int($0) }) {
                    for name in cases.split(separator: ",").map(String.init) {
                        guard let benchCase = Case(rawValue: name) else { throw ValidationError("unknown case \(name)") }
                        var labels = ["\"redis\":\"\(target == "cluster" ? "cluster-\(masters)" : target)\""]
                        if target == "cluster" { labels.append("\"push\":\"\(partitionPush ? "partition" : "entry")\"") }
                        if rounds > 1 { labels.append("\"round\":\(round + 1)") }
                        try runCase(benchCase, daemons: count, on: target == "cluster" ? .cluster : .single, labels: labels)
                    }
                }
            }
        }
    }

    /// One case on a fresh Redis (or cluster) and fleet: full rate, paced, and with --customers
    /// the same with a customer per request.
    private func runCase(_ benchCase: Case, daemons count: Int, on target: BenchRedis.Target, labels: [String]) throws {
        let name = benchCase.rawValue
        let redis = try BenchRedis.start(target, url: url, masters: masters)
        defer { redis.stop() }
        let signer = benchCase == .coordinateSigned ? try BenchSigner() : nil
        let clusterArgs = target == .cluster ? ["--partitions", String(partitions)] : []
        let fleet = try Fleet(count: count, redis: redis.configuration, url: redis.url,
                              extra: clusterArgs + daemonArgs + (signer.map { ["--trust", $0.trustFile] } ?? []))
        defer { fleet.stop() }
        if target == .cluster { try fleet.waitUntilHolding(partitions: partitions) } else { try fleet.waitUntilLive() }
        // A run tag keeps customers and ids of runs against one shared Redis (--url) apart.
        let tag = "\(name)-\(count)-\(UInt32.random(in: 0...UInt32.max))"
        let pushTo = target == .cluster && partitionPush ? Partitions(count: partitions) : nil
        var run = Runner(redis: redis.configuration, benchCase: benchCase, producers: producers,
                         customers: customers, customerPrefix: "\(tag)-c")
        run.signer = signer
        run.partitions = pushTo
        if warmupActive > 0 { try run.warmUp(active: warmupActive, label: tag) }
        let meter = CostMeter(nodes: redis.nodes, pids: fleet.pids)
        /// A full-rate case, printed with what each of its requests cost.
        func fullRate(_ runner: Runner, label: String, caseName: String) throws -> Measurement {
            // Read once the case's setup is done (approval's pending approvals), so that
            // the cost is the measured messages' alone.
            var before = try meter.read()
            var measured = try runner.measure(requests: requests, ratePerSecond: nil, label: label,
                                              setUp: { before = try meter.read() })
            measured.cost = labels + CostMeter.fields(from: before, to: try meter.read(), requests: measured.requests)
            emit(measured.json(case: caseName, daemons: count, producers: producers, customers: runner.customers))
            try measured.checkDuplicates()
            return measured
        }
        let full = try fullRate(run, label: "\(tag)-full", caseName: name)
        if paced > 0 {
            let rate = full.rps * paced
            var slow = try run.measure(requests: max(1000, min(requests, Int(rate * 5))), ratePerSecond: rate,
                                       label: "\(tag)-paced")
            slow.cost = labels
            emit(slow.json(case: "\(name)@\(Int(paced * 100))%", daemons: count, producers: producers,
                           customers: customers))
            try slow.checkDuplicates()
        }
        if customers > 0 && benchCase != .approval {
            // The same fleet and Redis (history included), now with a customer per request:
            // the two rates side by side show what history and shared customers cost.
            var fresh = Runner(redis: redis.configuration, benchCase: benchCase, producers: producers,
                               customers: 0, customerPrefix: "\(tag)-fresh")
            fresh.signer = signer
            fresh.partitions = pushTo
            _ = try fullRate(fresh, label: "\(tag)-fresh", caseName: "\(name)-fresh")
        }
    }

    enum Case: String {
        /// Small coordinate requests: 1–3 low-risk recommendations, no execution.
        case coordinate
        /// The same, signed (JWS, PROTOCOL.md section 10), daemons under --trust; signed before timing.
        case coordinateSigned = "coordinate-signed"
        /// Approval decisions on pending medium-risk approvals.
        case approval
        /// coordinate with execute_now: three-step plans at --sim-speed 0, to plan.completed.
        case plans
    }
}

/// One JSON line on stdout, written at once (stdout may be a pipe).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
