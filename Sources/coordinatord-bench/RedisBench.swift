import ArgumentParser
import Foundation
import RedisClient
import TestSupport

/// The Swift client against redis-benchmark, on the same server in the same run.
///
/// Both cases send 2 × `--requests` commands, half LPUSH and half RPOP on one list, from one
/// connection:
/// - `unpipelined`: every command is one round trip (`send`); redis-benchmark `-c 1`.
/// - `pipeline100`: pipelines of 100 commands, LPUSH and RPOP alternating (`pipeline`);
///   redis-benchmark `-c 1 -P 100`.
/// redis-benchmark reports LPUSH and RPOP separately; its figure here is both together
/// (2N commands over the sum of both run times), comparable with the Swift one.
///
/// Each case runs `--rounds` times, Swift and redis-benchmark interleaved, and each side's best
/// round is reported: on a shared machine a single round mostly measures the neighbours.
struct RedisBench: ParsableCommand {
    static let cases = ["unpipelined", "pipeline100"]

    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "LPUSH/RPOP throughput of the Swift client against redis-benchmark, as JSON lines."
    )

    @Option(name: .long, help: "LPUSH commands (and as many RPOP) per case.")
    var requests: Int = 200_000

    @Option(name: .long, help: "Use this server (redis://... or unix://...) instead of starting one.")
    var url: String?

    @Option(name: .long, help: "Rounds per case (Swift and redis-benchmark interleaved); the best of each is reported.")
    var rounds: Int = 3

    @Option(name: .long, help: "Cases to run: unpipelined, pipeline100 (repeatable; default both).")
    var `case`: [String] = []

    @Flag(name: .long, help: "Print every round's figures to stderr.")
    var verbose = false

    @Option(name: .long, help: "redis-benchmark executable.")
    var redisBenchmark: String = "redis-benchmark"

    func validate() throws {
        if requests < 100 { throw ValidationError("--requests must be at least 100") }
        if rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        for name in `case` where !Self.cases.contains(name) {
            throw ValidationError("unknown case \(name) (known: \(Self.cases.joined(separator: ", ")))")
        }
    }

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        var server: RedisServer?
        let configuration: RedisConfiguration
        if let url {
            configuration = try RedisConfiguration(url: url)
        } else {
            // No persistence: the benchmark measures the client and the protocol, not fsync.
            let started = try RedisServer.start(arguments: ["--appendonly", "no", "--save", ""])
            server = started
            configuration = started.configuration
        }
        defer { server?.stop() }

        let connection = try RedisConnection(configuration: configuration)
        defer { connection.close() }
        let key = "coordinatord-bench:list"
        _ = try connection.send("DEL", key)

        let selected = Self.cases.filter { `case`.isEmpty || `case`.contains($0) }
        var best: [String: (swift: Double, benchmark: Double)] = [:]
        for _ in 0..<rounds {
            for name in selected {
                let swift: Double
                if name == "unpipelined" {
                    swift = try measureUnpipelined(connection, key: key)
                } else {
                    swift = try measurePipelined(connection, key: key)
                }
                _ = try connection.send("DEL", key)
                let benchmark = try runRedisBenchmark(configuration, pipeline: name == "unpipelined" ? nil : 100)
                if verbose {
                    FileHandle.standardError.write(Data("round \(name): swift \(Int(swift)) redis-benchmark \(Int(benchmark))\n".utf8))
                }
                let previous = best[name] ?? (0, 0)
                best[name] = (max(previous.swift, swift), max(previous.benchmark, benchmark))
            }
        }
        for name in selected {
            print(Self.jsonLine(case: name, swift: best[name]!.swift, benchmark: best[name]!.benchmark))
        }
    }

    /// Commands per second, each command its own round trip.
    private func measureUnpipelined(_ connection: RedisConnection, key: String) throws -> Double {
        let push = RedisCommand("LPUSH", key, "xxx")
        let pop = RedisCommand("RPOP", key)
        for _ in 0..<min(requests, 5_000) {  // warm-up
            _ = try connection.send(push)
            _ = try connection.send(pop)
        }
        let start = ContinuousClock.now
        for _ in 0..<requests { _ = try connection.send(push) }
        for _ in 0..<requests { _ = try connection.send(pop) }
        return Double(2 * requests) / Self.seconds(since: start)
    }

    /// Commands per second, in pipelines of 100 alternating LPUSH and RPOP.
    private func measurePipelined(_ connection: RedisConnection, key: String) throws -> Double {
        let push = RedisCommand("LPUSH", key, "xxx")
        let pop = RedisCommand("RPOP", key)
        let batch = (0..<100).map { $0 % 2 == 0 ? push : pop }
        let batches = (2 * requests + 99) / 100
        for _ in 0..<min(batches, 200) { _ = try connection.pipeline(batch) }  // warm-up
        let start = ContinuousClock.now
        for _ in 0..<batches { _ = try connection.pipeline(batch) }
        return Double(batches * 100) / Self.seconds(since: start)
    }

    /// Runs redis-benchmark for LPUSH and RPOP and returns their combined commands per second.
    private func runRedisBenchmark(_ configuration: RedisConfiguration, pipeline: Int?) throws -> Double {
        var arguments: [String]
        switch configuration.endpoint {
        case .tcp(let host, let port): arguments = ["-h", host, "-p", String(port)]
        case .unix(let path): arguments = ["-s", path]
        }
        if let username = configuration.username { arguments += ["--user", username] }
        if let password = configuration.password { arguments += ["-a", password] }
        if configuration.database != 0 { arguments += ["--dbnum", String(configuration.database)] }
        arguments += ["-c", "1", "-n", String(requests), "-t", "lpush,rpop", "-q"]
        if let pipeline { arguments += ["-P", String(pipeline)] }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [redisBenchmark] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ValidationError("redis-benchmark \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)):\n\(text)")
        }
        let rates = Self.parseRates(text)
        guard let lpush = rates["LPUSH"], let rpop = rates["RPOP"], lpush > 0, rpop > 0 else {
            throw ValidationError("cannot read LPUSH and RPOP rates from redis-benchmark's output:\n\(text)")
        }
        // N LPUSH at `lpush`/s, then N RPOP at `rpop`/s: 2N commands in N/lpush + N/rpop seconds.
        return 2 / (1 / lpush + 1 / rpop)
    }

    /// "LPUSH: 13245.03 requests per second, p50=0.071 msec" lines (progress lines end in \r).
    static func parseRates(_ text: String) -> [String: Double] {
        var rates: [String: Double] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard let colon = trimmed.firstIndex(of: ":") else { continue }
            let rest = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard let space = rest.firstIndex(of: " "), rest[space...].hasPrefix(" requests per second"),
                let value = Double(rest[..<space])
            else { continue }
            rates[String(trimmed[..<colon])] = value
        }
        return rates
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private static func jsonLine(case name: String, swift: Double, benchmark: Double) -> String {
        let ratio = swift / benchmark
        return "{\"case\":\"\(name)\",\"swift_rps\":\(Int(swift.rounded())),\"redis_benchmark_rps\":\(Int(benchmark.rounded())),\"ratio\":\(String(format: "%.3f", ratio))}"
    }
}
