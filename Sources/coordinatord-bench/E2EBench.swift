import ArgumentParser
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

    func validate() throws {
        if customers < 0 || warmupActive < 0 { throw ValidationError("--customers and --warmup-active must not be negative") }
        if warmupActive > 0 && customers == 0 { throw ValidationError("--warmup-active needs --customers N (N > 0)") }
        if producers < 1 { throw ValidationError("--producers must be at least 1") }
    }

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        for count in daemons.split(separator: ",").compactMap({ Int($0) }) {
            for name in cases.split(separator: ",").map(String.init) {
                guard let benchCase = Case(rawValue: name) else { throw ValidationError("unknown case \(name)") }
                // Persistence as deployed (AOF, fsync every second), not the tests' fsync-per-write.
                let server: RedisServer? = url == nil ? try RedisServer.start(arguments: ["--appendfsync", "everysec"]) : nil
                let redis = try url.map { try RedisConfiguration(url: $0) } ?? server!.configuration
                let signer = benchCase == .coordinateSigned ? try BenchSigner() : nil
                let fleet = try Fleet(count: count, redis: redis, url: url ?? server!.url,
                                      extra: daemonArgs + (signer.map { ["--trust", $0.trustFile] } ?? []))
                defer {
                    fleet.stop()
                    server?.stop()
                }
                try fleet.waitUntilLive()
                // A run tag keeps customers and ids of runs against one shared Redis (--url) apart.
                let tag = "\(name)-\(count)-\(UInt32.random(in: 0...UInt32.max))"
                var run = Runner(redis: redis, benchCase: benchCase, producers: producers,
                                 customers: customers, customerPrefix: "\(tag)-c")
                run.signer = signer
                if warmupActive > 0 { try run.warmUp(active: warmupActive, label: tag) }
                let meterConnection = try RedisConnection(configuration: redis)
                defer { meterConnection.close() }
                let meter = CostMeter(connection: meterConnection, pids: fleet.pids)
                /// A full-rate case, printed with what each of its requests cost.
                func fullRate(_ runner: Runner, label: String, caseName: String) throws -> Measurement {
                    // Read once the case's setup is done (approval's pending approvals), so that
                    // the cost is the measured messages' alone.
                    var before = try meter.read()
                    var measured = try runner.measure(requests: requests, ratePerSecond: nil, label: label,
                                                      setUp: { before = try meter.read() })
                    measured.cost = CostMeter.fields(from: before, to: try meter.read(), requests: measured.requests)
                    emit(measured.json(case: caseName, daemons: count, producers: producers, customers: runner.customers))
                    try measured.checkDuplicates()
                    return measured
                }
                let full = try fullRate(run, label: "\(tag)-full", caseName: name)
                if paced > 0 {
                    let rate = full.rps * paced
                    let slow = try run.measure(requests: max(1000, min(requests, Int(rate * 5))), ratePerSecond: rate,
                                               label: "\(tag)-paced")
                    emit(slow.json(case: "\(name)@\(Int(paced * 100))%", daemons: count, producers: producers,
                                   customers: customers))
                    try slow.checkDuplicates()
                }
                if customers > 0 && benchCase != .approval {
                    // The same fleet and Redis (history included), now with a customer per request:
                    // the two rates side by side show what history and shared customers cost.
                    var fresh = Runner(redis: redis, benchCase: benchCase, producers: producers,
                                       customers: 0, customerPrefix: "\(tag)-fresh")
                    fresh.signer = signer
                    _ = try fullRate(fresh, label: "\(tag)-fresh", caseName: "\(name)-fresh")
                }
            }
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
