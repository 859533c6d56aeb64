import ArgumentParser
import Foundation
import RedisClient
import TestSupport

/// Sustained load: many requests over a fixed set of customers, each making a plan that
/// completes, against daemons that forget finished work after `--retention`. Every
/// `--report-every` finished plans it prints a JSON line: the rate in that window, Redis
/// `used_memory` and each daemon's RSS, so growth over a long run shows. Every time bound is
/// compressed to `--retention` (idempotency records `--dedupe-ttl`, reply lists `--reply-ttl`,
/// 24 h and 1 h by default), so that a million requests reach the steady state that a
/// deployment reaches in days; a daemon-arg given after them wins.
struct SoakBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Sustained load with execute_now and --retention: rate, Redis memory and daemon RSS per window.")

    @Option(help: "Use this Redis instead of starting one.") var url: String?
    @Option(help: "Daemons to run.") var daemons: Int = 1
    @Option(help: "Requests in all.") var requests: Int = 1_000_000
    @Option(help: "Customers the requests are spread over, round-robin.") var customers: Int = 200
    @Option(help: "Concurrent producers.") var producers: Int = 4
    @Option(help: "Requests sent but whose plan has not ended yet, at most.") var window: Int = 2000
    @Option(help: "Print a line every this many finished plans.") var reportEvery: Int = 100_000
    @Option(help: "--retention for the daemons.") var retention: String = "60s"
    @Option(help: "Abort when no plan ends for this many seconds.") var stallSeconds: Double = 60
    @Option(name: .customLong("daemon-arg"), parsing: .unconditionalSingleValue,
            help: "An extra flag for every daemon, e.g. --daemon-arg=--metrics-port=9464 (repeatable).")
    var daemonArgs: [String] = []

    func validate() throws {
        guard requests > 0, customers > 0, producers > 0, window >= producers * 50, reportEvery > 0, daemons > 0 else {
            throw ValidationError("--requests, --customers, --producers, --report-every and --daemons must be positive; --window at least 50 per producer")
        }
    }

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        let server: RedisServer? = url == nil ? try RedisServer.start(arguments: ["--appendfsync", "everysec"]) : nil
        let redis = try url.map { try RedisConfiguration(url: $0) } ?? server!.configuration
        let fleet = try Fleet(count: daemons, redis: redis, url: url ?? server!.url,
                              extra: ["--retention", retention, "--dedupe-ttl", retention, "--reply-ttl", retention] + daemonArgs)
        defer {
            fleet.stop()
            server?.stop()
        }
        try fleet.waitUntilLive()

        let tag = "soak-\(UInt32.random(in: 0...UInt32.max))"
        let probe = try RedisConnection(configuration: redis)
        defer { probe.close() }
        // Follow the event stream from its current end.
        let lastID = try probe.send("XREVRANGE", "coord:events:stream", "+", "-", "COUNT", 1)
            .array?.first?.array?.first?.string ?? "0-0"
        let credit = DispatchSemaphore(value: window)
        let failures = Failures()
        let perProducer = requests / producers
        let total = perProducer * producers

        startProducers(redis: redis, tag: tag, credit: credit, failures: failures, perProducer: perProducer)

        // Plan endings, read from the stream (XREAD BLOCK from the last id: nothing is missed
        // while this thread reports, unlike a subscription).
        let events = try RedisConnection(configuration: redis)
        defer { events.close() }
        var ended = [Bool](repeating: false, count: total)
        var finished = 0, notCompleted = 0, duplicates = 0
        var cursor = lastID
        let start = DispatchTime.now().uptimeNanoseconds
        var windowStart = start
        var windowCPU = try Self.cpu(probe, fleet)
        var windowCalls = try redisCommandCalls(probe)
        var lastProgress = Date()
        defer { failures.stop() }
        while finished < total {
            if let error = failures.first { throw error }
            guard let streams = try events.send("XREAD", "COUNT", 2000, "BLOCK", 1000, "STREAMS",
                                                "coord:events:stream", cursor).array,
                  let entries = streams.first?.array?.last?.array, !entries.isEmpty else {
                if Date().timeIntervalSince(lastProgress) > stallSeconds {
                    throw ValidationError("no plan ended for \(Int(stallSeconds)) s (\(finished)/\(total))")
                }
                continue
            }
            for entry in entries {
                guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { continue }
                cursor = id
                guard let (type, recommendation) = Self.planEnding(parts[1].array ?? []) else { continue }
                guard recommendation.hasPrefix("s"), let i = Int(recommendation.dropFirst()), i >= 0, i < total else { continue }
                if ended[i] {
                    duplicates += 1
                    continue
                }
                ended[i] = true
                finished += 1
                lastProgress = Date()
                if type != "plan.completed" { notCompleted += 1 }
                credit.signal()
                if finished % reportEvery == 0 || finished == total {
                    let now = DispatchTime.now().uptimeNanoseconds
                    let windowRequests = finished % reportEvery == 0 ? reportEvery : finished % reportEvery
                    let cpu = try Self.cpu(probe, fleet)
                    let calls = try redisCommandCalls(probe)
                    try report(finished: finished, window: windowRequests, seconds: (Double(now - windowStart) / 1e9, Double(now - start) / 1e9),
                               cpu: (cpu.redis - windowCPU.redis, cpu.children - windowCPU.children, cpu.daemons - windowCPU.daemons),
                               calls: calls - windowCalls, counts: (notCompleted, duplicates), probe: probe, fleet: fleet)
                    windowStart = now
                    windowCPU = cpu
                    windowCalls = calls
                }
            }
        }
        duplicates += try Self.lateEndings(events, after: cursor)
        if duplicates > 0 { throw ValidationError("\(duplicates) plans ended twice") }
    }

    /// One window's JSON line: rates, Redis memory, the daemons' RSS, CPU and Redis commands
    /// per request.
    private func report(finished: Int, window: Int, seconds: (window: Double, total: Double),
                        cpu: (redis: Double, children: Double, daemons: Double), calls: Int,
                        counts: (notCompleted: Int, duplicates: Int), probe: RedisConnection, fleet: Fleet) throws {
        let rss = fleet.pids.map { residentKilobytes(pid: $0).map(String.init) ?? "null" }.joined(separator: ",")
        let memory = try redisUsedMemory(probe).map(String.init) ?? "null"
        // What waits: requests not yet taken, and plans started but not yet taken by an executor.
        let waiting = try probe.pipeline([RedisCommand("LLEN", "coord:requests"), RedisCommand("LLEN", "coord:plans:ready")])
            .map { $0.integer.map(String.init) ?? "null" }
        func perRequest(_ seconds: Double) -> String { String(format: "%.0f", seconds / Double(window) * 1e6) }
        emit(#"{"case":"soak","requests":\#(finished),"window_rps":\#(String(format: "%.1f", Double(window) / seconds.window)),"total_rps":\#(String(format: "%.1f", Double(finished) / seconds.total)),"redis_used_memory":\#(memory),"requests_queued":\#(waiting[0]),"plans_queued":\#(waiting[1]),"daemon_rss_kb":[\#(rss)],"cpu_us_per_request":{"redis":\#(perRequest(cpu.redis)),"redis_children":\#(perRequest(cpu.children)),"daemons":\#(perRequest(cpu.daemons))},"redis_commands_per_request":\#(String(format: "%.2f", Double(calls) / Double(window))),"not_completed":\#(counts.notCompleted),"duplicates":\#(counts.duplicates),"daemons":\#(daemons),"customers":\#(customers)}"#)
    }

    /// The producers, each a thread pushing its share of the requests in pipelines of 50,
    /// never more than `credit` unfinished in all.
    private func startProducers(redis: RedisConfiguration, tag: String, credit: DispatchSemaphore, failures: Failures,
                                perProducer: Int) {
    for p in 0..<producers {
        Thread.detachNewThread {
            do {
                let connection = try RedisConnection(configuration: redis)
                defer { connection.close() }
                var batch: [RedisCommand] = []
                for n in 0..<perProducer {
                    while credit.wait(timeout: .now() + 1) == .timedOut {
                        if failures.stopped { return }
                    }
                    let i = n * producers + p
                    batch.append(RedisCommand("LPUSH", "coord:requests",
                        #"{"kind":"coordinate","request_id":"\#(tag)-\#(i)","customer_id":"\#(tag)-c\#(i % customers)","auto_approve":true,"execute_now":true,"recommendations":[{"id":"s\#(i)","agent_id":"soak-agent","type":"cost","action":"migrate_to_spot","risk_level":"low","estimated_savings":100,"affected_resources":["i-\#(i)"],"priority":1,"confidence":0.9}]}"#))
                    if batch.count == 50 || n == perProducer - 1 {
                        _ = try connection.pipeline(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
            } catch {
                failures.add(error)
            }
        }
    }
    }

    /// CPU seconds so far of Redis, its children (AOF rewrites) and the daemons: per request in
    /// each window, where a slowdown comes from shows here. CPU still moves with the machine
    /// (the same commands took 10-20 % longer in some windows of one run); the Redis commands
    /// per request do not, so a request that really grew in cost shows there.
    private static func cpu(_ probe: RedisConnection, _ fleet: Fleet) throws -> (redis: Double, children: Double, daemons: Double) {
        let redisCPU = try redisCPUSeconds(probe)
        return (redisCPU.main, redisCPU.children, fleet.pids.compactMap { processCPUSeconds(pid: $0) }.reduce(0, +))
    }

    /// Plan endings after `cursor` (a late second ending of any plan is a duplicate too).
    private static func lateEndings(_ events: RedisConnection, after cursor: String) throws -> Int {
        guard let streams = try events.send("XREAD", "COUNT", 2000, "BLOCK", 1000, "STREAMS", "coord:events:stream", cursor).array,
              let entries = streams.first?.array?.last?.array else { return 0 }
        return entries.filter { planEnding($0.array?.last?.array ?? []) != nil }.count
    }

    private static let endings: Set<String> = ["plan.completed", "plan.rolled_back", "plan.cancelled"]
    private static let recommendationKey = Array(#""recommendation_id":""#.utf8)

    /// (type, recommendation_id) when the stream entry's fields are a plan's ending.
    private static func planEnding(_ fields: [RedisReply]) -> (String, String)? {
        var type: String?
        var event: [UInt8]?
        var k = 0
        while k + 1 < fields.count {
            switch fields[k].string {
            case "type": type = fields[k + 1].string
            case "event": event = fields[k + 1].bytes
            default: break
            }
            k += 2
        }
        guard let type, endings.contains(type), let event else { return nil }
        guard let at = find(event, recommendationKey) else { return nil }
        let start = at + recommendationKey.count
        guard let end = event[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return (type, String(decoding: event[start..<end], as: UTF8.self))
    }

    private static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}

/// Errors from producer threads, and the flag that stops them.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [any Error] = []
    private var isStopped = false

    func add(_ error: any Error) { lock.withLock { errors.append(error) } }
    var first: (any Error)? { lock.withLock { errors.first } }
    func stop() { lock.withLock { isStopped = true } }
    var stopped: Bool { lock.withLock { isStopped } }
}
