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
    @Option(help: "Cases: coordinate, approval, plans (comma-separated).") var cases: String = "coordinate,approval,plans"
    @Option(help: "Also measure latency when offered this fraction of the measured rate (0 to skip).") var paced: Double = 0.5

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        for count in daemons.split(separator: ",").compactMap({ Int($0) }) {
            for name in cases.split(separator: ",").map(String.init) {
                guard let benchCase = Case(rawValue: name) else { throw ValidationError("unknown case \(name)") }
                // Persistence as deployed (AOF, fsync every second), not the tests' fsync-per-write.
                let server: RedisServer? = url == nil ? try RedisServer.start(arguments: ["--appendfsync", "everysec"]) : nil
                let redis = try url.map { try RedisConfiguration(url: $0) } ?? server!.configuration
                let fleet = try Fleet(count: count, redis: redis, url: url ?? server!.url)
                defer {
                    fleet.stop()
                    server?.stop()
                }
                try fleet.waitUntilLive()
                let run = Runner(redis: redis, benchCase: benchCase, producers: producers)
                let full = try run.measure(requests: requests, ratePerSecond: nil, label: "\(name)-\(count)")
                emit(full.json(case: name, daemons: count, producers: producers))
                if paced > 0 {
                    let rate = full.rps * paced
                    let slow = try run.measure(requests: max(1000, min(requests, Int(rate * 5))), ratePerSecond: rate,
                                               label: "\(name)-paced-\(count)")
                    emit(slow.json(case: "\(name)@\(Int(paced * 100))%", daemons: count, producers: producers))
                }
            }
        }
    }

    enum Case: String {
        /// Small coordinate requests: 1–3 low-risk recommendations, no execution.
        case coordinate
        /// Approval decisions on pending medium-risk approvals.
        case approval
        /// coordinate with execute_now: three-step plans at --sim-speed 0, to plan.completed.
        case plans
    }
}

/// The daemons under test, as separate processes of the built binary.
private final class Fleet {
    private var processes: [Process] = []
    private let redis: RedisConfiguration

    init(count: Int, redis: RedisConfiguration, url: String) throws {
        self.redis = redis
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("coordinatord")
        for _ in 0..<count {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["run", "--redis-url", url, "--sim-speed", "0", "--log-format", "json"]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try ChildProcess.run(process)
            processes.append(process)
        }
    }

    func waitUntilLive() throws {
        let connection = try RedisConnection(configuration: redis)
        defer { connection.close() }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let live = try connection.send("SCARD", "coord:workers").integer ?? 0
            if live >= processes.count { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ValidationError("daemons did not start (no heartbeat within 10 s)")
    }

    func stop() {
        for process in processes where process.isRunning { process.terminate() }
        for process in processes { process.waitUntilExit() }
    }
}

private struct Measurement {
    var requests: Int
    var seconds: Double
    var latenciesMs: [Double]
    var errors: Int
    var offered: Double?

    var rps: Double { Double(requests) / seconds }

    func percentile(_ p: Double) -> Double {
        guard !latenciesMs.isEmpty else { return 0 }
        let sorted = latenciesMs.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    func json(case name: String, daemons: Int, producers: Int) -> String {
        func r(_ v: Double) -> String { String(format: "%.2f", v) }
        var fields = [
            "\"case\":\"\(name)\"", "\"daemons\":\(daemons)", "\"requests\":\(requests)", "\"producers\":\(producers)",
            "\"seconds\":\(r(seconds))", "\"rps\":\(r(rps))", "\"p50_ms\":\(r(percentile(0.5)))",
            "\"p99_ms\":\(r(percentile(0.99)))", "\"max_ms\":\(r(latenciesMs.max() ?? 0))", "\"errors\":\(errors)",
        ]
        if let offered { fields.append("\"offered_rps\":\(r(offered))") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}

/// Producers and collectors, one connection each, on threads of their own.
private struct Runner {
    let redis: RedisConfiguration
    let benchCase: E2EBench.Case
    let producers: Int

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private static let okTrue = Array(#""ok":true"#.utf8)
    private static let requestIDKey = Array(#""request_id":""#.utf8)

    private static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool { find(haystack, needle) != nil }

    /// The reply's `request_id` (the bench's ids need no unescaping).
    private static func requestID(in reply: [UInt8]) -> String? {
        guard let at = find(reply, requestIDKey) else { return nil }
        let start = at + requestIDKey.count
        guard let end = reply[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: reply[start..<end], as: UTF8.self)
    }

    func measure(requests: Int, ratePerSecond: Double?, label: String) throws -> Measurement {
        let setup = try RedisConnection(configuration: redis)
        defer { setup.close() }
        let perProducer = requests / producers
        let total = perProducer * producers

        // Approval decisions need pending approvals first (not timed).
        let approvalIDs: [[String]] = benchCase == .approval
            ? try prepareApprovals(setup, label: label, perProducer: perProducer)
            : Array(repeating: [], count: producers)

        let collected = Collected()
        let group = DispatchGroup()
        let start = Self.now()

        // For plans: completion is seen on the event channel, keyed by customer.
        let planWatcher: PlanWatcher? = benchCase == .plans ? try PlanWatcher(redis: redis, expected: total) : nil

        for p in 0..<producers {
            let replyList = "bench:\(label):replies:\(p)"
            let sent = SendTimes()
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let connection = try RedisConnection(configuration: redis)
                    defer { connection.close() }
                    let interval = ratePerSecond.map { Double(producers) / $0 } ?? 0
                    var batch: [RedisCommand] = []
                    let pipelineSize = ratePerSecond == nil ? 50 : 1
                    for n in 0..<perProducer {
                        if interval > 0 {
                            let due = start + UInt64(Double(n) * interval * 1e9)
                            let current = Self.now()
                            if due > current { Thread.sleep(forTimeInterval: Double(due - current) / 1e9) }
                        }
                        let (queue, message, key) = makeMessage(label: label, producer: p, n: n, replyList: replyList,
                                                                approvals: approvalIDs[p])
                        sent.set(key, Self.now())
                        planWatcher?.expect(key, at: Self.now())
                        batch.append(RedisCommand("LPUSH", queue, message))
                        if batch.count >= pipelineSize {
                            _ = try connection.pipeline(batch)
                            batch.removeAll(keepingCapacity: true)
                        }
                    }
                    if !batch.isEmpty { _ = try connection.pipeline(batch) }
                } catch {
                    collected.fail(error)
                }
            }
            guard benchCase != .plans else { continue }
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let connection = try RedisConnection(configuration: redis)
                    defer { connection.close() }
                    var received = 0
                    var local: [Double] = []
                    var localErrors = 0
                    while received < perProducer {
                        // Whatever replies are waiting, in one pop: the collectors share the
                        // machine (and Redis) with what they measure.
                        let reply = try connection.send("BLMPOP", 10, 1, replyList, "RIGHT", "COUNT", 256)
                        guard let values = reply.array?.last?.array, !values.isEmpty else {
                            throw ValidationError("replies stopped coming (\(received)/\(perProducer))")
                        }
                        let at = Self.now()
                        for element in values {
                            guard let value = element.bytes else { continue }
                            received += 1
                            // Scanned, not parsed.
                            if !Self.contains(value, Self.okTrue) { localErrors += 1 }
                            let key = Self.requestID(in: value) ?? ""
                            if let sentAt = sent.get(key) { local.append(Double(at - sentAt) / 1e6) }
                        }
                    }
                    collected.add(local, errors: localErrors)
                } catch {
                    collected.fail(error)
                }
            }
        }
        group.wait()
        var (latencies, errors, failures) = collected.snapshot
        if let planWatcher {
            let result = try planWatcher.wait(timeout: 120)
            latencies = result.latencies
            errors = result.failures
        }
        let seconds = Double(Self.now() - start) / 1e9
        if let failure = failures.first { throw failure }
        return Measurement(requests: total, seconds: seconds, latenciesMs: latencies, errors: errors, offered: ratePerSecond)
    }

    /// A wire message for producer p's n-th request; approvals are decided by request id.
    private func makeMessage(label: String, producer p: Int, n: Int, replyList: String, approvals: [String]) -> (String, String, String) {
        let id = "\(label)-\(p)-\(n)"
        switch benchCase {
        case .coordinate:
            let recs = (0..<(1 + n % 3)).map { r in
                #"{"id":"r\#(r)","agent_id":"bench-agent","type":"cost","action":"scale_up","risk_level":"low","estimated_savings":\#(10 + r),"affected_resources":["i-\#(r)"],"priority":\#(r),"confidence":0.9}"#
            }.joined(separator: ",")
            return ("coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id)","reply_to":"\#(replyList)","customer_id":"\#(id)","auto_approve":true,"execute_now":false,"recommendations":[\#(recs)]}"#,
                    id)
        case .approval:
            return ("coord:approvals",
                    #"{"approval_id":"\#(approvals[n])","decision":"approve","user_id":"ops@example.com","request_id":"\#(id)","reply_to":"\#(replyList)"}"#,
                    id)
        case .plans:
            return ("coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id)","customer_id":"\#(id)","auto_approve":true,"execute_now":true,"recommendations":[{"id":"r","agent_id":"bench-agent","type":"cost","action":"migrate_to_spot","risk_level":"low","estimated_savings":100,"affected_resources":["i-1"],"priority":1,"confidence":0.9}]}"#,
                    id)
        }
    }

    private func prepareApprovals(_ connection: RedisConnection, label: String, perProducer: Int) throws -> [[String]] {
        var ids: [[String]] = Array(repeating: [], count: producers)
        let replyList = "bench:\(label):setup"
        var commands: [RedisCommand] = []
        for p in 0..<producers {
            for n in 0..<perProducer {
                let id = "\(label)-setup-\(p)-\(n)"
                commands.append(RedisCommand("LPUSH", "coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id)","reply_to":"\#(replyList)","customer_id":"\#(id)","recommendations":[{"id":"r","agent_id":"bench-agent","type":"cost","action":"scale_up","risk_level":"medium","affected_resources":["i-1"]}]}"#))
                if commands.count == 500 { _ = try connection.pipeline(commands); commands.removeAll() }
            }
        }
        if !commands.isEmpty { _ = try connection.pipeline(commands) }
        var byRequest: [String: String] = [:]
        for _ in 0..<(producers * perProducer) {
            guard let value = try connection.send("BRPOP", replyList, 30).array?.last?.bytes,
                  let object = try JSONSerialization.jsonObject(with: Data(value)) as? [String: Any],
                  let result = object["result"] as? [String: Any],
                  let approval = (result["approvals"] as? [[String: Any]])?.first?["id"] as? String,
                  let request = object["request_id"] as? String else {
                throw ValidationError("setting up approvals failed")
            }
            byRequest[request] = approval
        }
        for p in 0..<producers {
            ids[p] = (0..<perProducer).map { byRequest["\(label)-setup-\(p)-\($0)"]! }
        }
        return ids
    }
}

/// Send times by request id, shared between a producer and its collector.
private final class SendTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [String: UInt64] = [:]

    func set(_ key: String, _ at: UInt64) {
        lock.lock(); times[key] = at; lock.unlock()
    }

    func get(_ key: String) -> UInt64? {
        lock.lock(); defer { lock.unlock() }
        return times.removeValue(forKey: key)
    }
}

/// Follows `coord:events` and times each plan from its request to `plan.completed`.
private final class PlanWatcher: @unchecked Sendable {
    private let subscriber: RedisSubscriber
    private let expected: Int
    private let sent = SendTimes()
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var failures = 0
    private let done = DispatchSemaphore(value: 0)
    private let stop = NSLock()
    private var stopped = false

    init(redis: RedisConfiguration, expected: Int) throws {
        subscriber = try RedisSubscriber(configuration: redis)
        try subscriber.subscribe(["coord:events"])
        self.expected = expected
        Thread.detachNewThread { [self] in follow() }
    }

    func expect(_ customer: String, at: UInt64) { sent.set(customer, at) }

    private func follow() {
        var seen = 0
        while seen < expected {
            stop.lock(); let isStopped = stopped; stop.unlock()
            if isStopped { break }
            guard let message = try? subscriber.next(timeout: 0.5) else { continue }
            let at = DispatchTime.now().uptimeNanoseconds
            guard let object = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                  let type = object["type"] as? String, type.hasPrefix("plan."),
                  ["plan.completed", "plan.rolled_back", "plan.cancelled"].contains(type) else { continue }
            seen += 1
            lock.lock()
            if type != "plan.completed" { failures += 1 }
            if let customer = object["customer_id"] as? String, let sentAt = sent.get(customer) {
                latencies.append(Double(at - sentAt) / 1e6)
            }
            lock.unlock()
        }
        done.signal()
    }

    func wait(timeout: Double) throws -> (latencies: [Double], failures: Int) {
        let result = done.wait(timeout: .now() + timeout)
        stop.lock(); stopped = true; stop.unlock()
        if result == .timedOut { _ = done.wait(timeout: .now() + 1) }
        subscriber.close()
        lock.lock(); defer { lock.unlock() }
        if result == .timedOut { throw ValidationError("only \(latencies.count)/\(expected) plans ended within \(Int(timeout)) s") }
        return (latencies, failures)
    }
}

/// Results gathered by the producer and collector threads.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var errors = 0
    private var failures: [any Error] = []

    func add(_ local: [Double], errors localErrors: Int) {
        lock.withLock {
            latencies += local
            errors += localErrors
        }
    }

    func fail(_ error: any Error) { lock.withLock { failures.append(error) } }

    var snapshot: ([Double], Int, [any Error]) { lock.withLock { (latencies, errors, failures) } }
}

/// One JSON line on stdout, written at once (stdout may be a pipe).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
