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

private struct Measurement {
    var requests: Int
    var seconds: Double
    var latenciesMs: [Double]
    var errors: Int
    var offered: Double?
    /// Replies (or plan endings) seen more than once for one request: each is a broken promise.
    var duplicates: Int = 0
    /// What each request cost Redis and the daemons (`CostMeter`), as JSON fields.
    var cost: [String] = []

    var rps: Double { Double(requests) / seconds }

    func percentile(_ p: Double) -> Double {
        guard !latenciesMs.isEmpty else { return 0 }
        let sorted = latenciesMs.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    func checkDuplicates() throws {
        if duplicates > 0 { throw ValidationError("\(duplicates) duplicate replies: a request was answered twice") }
    }

    func json(case name: String, daemons: Int, producers: Int, customers: Int = 0) -> String {
        func r(_ v: Double) -> String { String(format: "%.2f", v) }
        var fields = [
            "\"case\":\"\(name)\"", "\"daemons\":\(daemons)", "\"requests\":\(requests)", "\"producers\":\(producers)",
            "\"seconds\":\(r(seconds))", "\"rps\":\(r(rps))", "\"p50_ms\":\(r(percentile(0.5)))",
            "\"p99_ms\":\(r(percentile(0.99)))", "\"max_ms\":\(r(latenciesMs.max() ?? 0))", "\"errors\":\(errors)",
            "\"duplicates\":\(duplicates)", "\"customers\":\(customers)",
        ]
        if let offered { fields.append("\"offered_rps\":\(r(offered))") }
        return "{" + (fields + cost).joined(separator: ",") + "}"
    }
}

/// Producers and collectors, one connection each, on threads of their own.
private struct Runner {
    let redis: RedisConfiguration
    let benchCase: E2EBench.Case
    let producers: Int
    /// 0: every request has a customer of its own; N: requests go to N customers round-robin.
    let customers: Int
    let customerPrefix: String
    /// Signs every message (`coordinate-signed`).
    var signer: BenchSigner?

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

    /// The customer of producer p's n-th request: round-robin over the whole sequence of requests.
    private func customer(producer p: Int, n: Int, id: String) -> String {
        customers == 0 ? id : "\(customerPrefix)\((n * producers + p) % customers)"
    }

    /// Leaves each customer with `active` recommendations pending approval (medium risk, each
    /// on a resource of its own, so nothing measured conflicts with them). Not timed.
    func warmUp(active: Int, label: String) throws {
        let connection = try RedisConnection(configuration: redis)
        defer { connection.close() }
        let replyList = "bench:\(label):warmup"
        let chunk = 500  // recommendations per request: well under --max-message-bytes
        var commands: [RedisCommand] = []
        var sent = 0
        for c in 0..<customers {
            var from = 0
            while from < active {
                let to = min(active, from + chunk)
                let recs = (from..<to).map { k in
                    #"{"id":"w\#(k)","agent_id":"bench-warmup","type":"cost","action":"scale_up","risk_level":"medium","affected_resources":["w-\#(k)"]}"#
                }.joined(separator: ",")
                commands.append(RedisCommand("LPUSH", "coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(label)-w\#(c)-\#(from)","reply_to":"\#(replyList)","customer_id":"\#(customerPrefix)\#(c)","recommendations":[\#(recs)]}"#))
                sent += 1
                from = to
                if commands.count == 50 { _ = try connection.pipeline(commands); commands.removeAll() }
            }
        }
        if !commands.isEmpty { _ = try connection.pipeline(commands) }
        for received in 0..<sent {
            guard let value = try connection.send("BRPOP", replyList, 120).array?.last?.bytes else {
                throw ValidationError("warm-up replies stopped coming (\(received)/\(sent))")
            }
            guard Self.contains(value, Self.okTrue) else {
                throw ValidationError("warm-up request failed: \(String(decoding: value.prefix(300), as: UTF8.self))")
            }
        }
    }

    /// What every producer and collector of one measurement shares.
    private struct Run: Sendable {
        let label: String
        let perProducer: Int
        let ratePerSecond: Double?
        let start: UInt64
        let approvalIDs: [[String]]
        let presigned: [[(String, String, String)]]?
        let collected: Collected
        let planWatcher: PlanWatcher?

        func replyList(_ p: Int) -> String { "bench:\(label):replies:\(p)" }
    }

    /// `setUp` runs once the case's untimed setup is done, right before the first message.
    func measure(requests: Int, ratePerSecond: Double?, label: String, setUp: () throws -> Void = {}) throws -> Measurement {
        let setup = try RedisConnection(configuration: redis)
        defer { setup.close() }
        let perProducer = requests / producers
        let total = perProducer * producers
        // Approval decisions need pending approvals first (not timed).
        let approvalIDs: [[String]] = benchCase == .approval
            ? try prepareApprovals(setup, label: label, perProducer: perProducer)
            : Array(repeating: [], count: producers)
        let presigned = try signer.map { signer in
            try (0..<producers).map { p in
                try (0..<perProducer).map { n in
                    let (queue, message, key) = makeMessage(label: label, producer: p, n: n, replyList: "bench:\(label):replies:\(p)", approvals: [])
                    return (queue, try signer.sign(message), key)
                }
            }
        }
        try setUp()
        // For plans: completion is seen on the event channel, keyed by recommendation id (the
        // request id: unique even when customers are shared).
        let planWatcher: PlanWatcher? = benchCase == .plans ? try PlanWatcher(redis: redis, expected: total) : nil
        let run = Run(label: label, perProducer: perProducer, ratePerSecond: ratePerSecond, start: Self.now(),
                      approvalIDs: approvalIDs, presigned: presigned, collected: Collected(), planWatcher: planWatcher)
        let group = DispatchGroup()
        for p in 0..<producers {
            let sent = SendTimes()
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do { try produce(run, producer: p, sent: sent) } catch { run.collected.fail(error) }
            }
            guard benchCase != .plans else { continue }
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do { try collect(run, producer: p, sent: sent) } catch { run.collected.fail(error) }
            }
        }
        group.wait()
        return try finish(run, total: total)
    }

    /// Producer p's requests, pushed in pipelines of 50 (closed loop) or one at a time at its
    /// share of `ratePerSecond` (open loop).
    private func produce(_ run: Run, producer p: Int, sent: SendTimes) throws {
        let connection = try RedisConnection(configuration: redis)
        defer { connection.close() }
        let interval = run.ratePerSecond.map { Double(producers) / $0 } ?? 0
        // Producers are offset by a fraction of the interval, so the offered load is
        // spread evenly instead of arriving in bursts of `producers` at once.
        let phase = interval * Double(p) / Double(producers)
        var batch: [RedisCommand] = []
        let pipelineSize = run.ratePerSecond == nil ? 50 : 1
        for n in 0..<run.perProducer {
            var stamp = Self.now()
            if interval > 0 {
                // Open loop: latency counts from when the request was due, not from when
                // a late producer got round to sending it (coordinated omission).
                let due = run.start + UInt64((Double(n) * interval + phase) * 1e9)
                if due > stamp { Thread.sleep(forTimeInterval: Double(due - stamp) / 1e9) }
                stamp = due
            }
            let (queue, message, key) = run.presigned?[p][n] ?? makeMessage(label: run.label, producer: p, n: n,
                                                                           replyList: run.replyList(p), approvals: run.approvalIDs[p])
            sent.set(key, stamp)
            run.planWatcher?.expect(key, at: stamp)
            batch.append(RedisCommand("LPUSH", queue, message))
            if batch.count >= pipelineSize {
                _ = try connection.pipeline(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { _ = try connection.pipeline(batch) }
    }

    /// Producer p's replies: latencies, errors and duplicates, and when the last one came.
    private func collect(_ run: Run, producer p: Int, sent: SendTimes) throws {
        let connection = try RedisConnection(configuration: redis)
        defer { connection.close() }
        let replyList = run.replyList(p)
        var received = 0
        var local: [Double] = []
        var localErrors = 0
        var duplicates = 0
        var seen = Set<String>()
        seen.reserveCapacity(run.perProducer)
        func take(_ values: [RedisReply], at: UInt64) {
            for element in values {
                guard let value = element.bytes else { continue }
                // Scanned, not parsed.
                let key = Self.requestID(in: value) ?? ""
                guard seen.insert(key).inserted else {
                    duplicates += 1
                    continue
                }
                received += 1
                if !Self.contains(value, Self.okTrue) { localErrors += 1 }
                if let sentAt = sent.get(key) { local.append(Double(at &- sentAt) / 1e6) }
            }
        }
        while received < run.perProducer {
            // Whatever replies are waiting, in one pop: the collectors share the
            // machine (and Redis) with what they measure.
            let reply = try connection.send("BLMPOP", 10, 1, replyList, "RIGHT", "COUNT", 256)
            guard let values = reply.array?.last?.array, !values.isEmpty else {
                throw ValidationError("replies stopped coming (\(received)/\(run.perProducer))")
            }
            // A reply due before it was sent (paced, producer behind) still counts from its due time.
            take(values, at: Self.now())
        }
        // The last reply is in: the rate counts to here, not through the wait below.
        let answeredAt = Self.now()
        // Listen a little longer: a late second reply to any request is a duplicate.
        if let late = try connection.send("BLMPOP", 1, 1, replyList, "RIGHT", "COUNT", 256).array?.last?.array {
            let before = received
            take(late, at: Self.now())
            duplicates += received - before  // replies to requests never sent count too
        }
        run.collected.add(local, errors: localErrors, duplicates: duplicates, answeredAt: answeredAt)
    }

    /// The measurement once every producer and collector is done (and, for plans, every plan
    /// ended).
    private func finish(_ run: Run, total: Int) throws -> Measurement {
        var (latencies, errors, duplicates, failures) = run.collected.snapshot
        var planEnd: UInt64?
        if let planWatcher = run.planWatcher {
            let result = try planWatcher.wait(timeout: 120)
            latencies = result.latencies
            errors = result.failures
            duplicates = result.duplicates
            planEnd = result.endedAt
        }
        // Requests: until the last reply came (the collectors then listen a second more for
        // duplicates, which is no part of the rate). Plans: until the watcher saw the last end.
        let end = planEnd ?? run.collected.answeredAt
        let seconds = Double(end - run.start) / 1e9
        if let failure = failures.first { throw failure }
        return Measurement(requests: total, seconds: seconds, latenciesMs: latencies, errors: errors,
                           offered: run.ratePerSecond, duplicates: duplicates)
    }

    /// A wire message for producer p's n-th request; approvals are decided by request id.
    private func makeMessage(label: String, producer p: Int, n: Int, replyList: String, approvals: [String]) -> (String, String, String) {
        let id = "\(label)-\(p)-\(n)"
        let customer = customer(producer: p, n: n, id: id)
        switch benchCase {
        case .coordinate, .coordinateSigned:
            let recs = (0..<(1 + n % 3)).map { r in
                #"{"id":"r\#(r)","agent_id":"bench-agent","type":"cost","action":"scale_up","risk_level":"low","estimated_savings":\#(10 + r),"affected_resources":["i-\#(r)"],"priority":\#(r),"confidence":0.9}"#
            }.joined(separator: ",")
            return ("coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id)","reply_to":"\#(replyList)","customer_id":"\#(customer)","auto_approve":true,"execute_now":false,"recommendations":[\#(recs)]}"#,
                    id)
        case .approval:
            return ("coord:approvals",
                    #"{"approval_id":"\#(approvals[n])","decision":"approve","user_id":"ops@example.com","request_id":"\#(id)","reply_to":"\#(replyList)"}"#,
                    id)
        case .plans:
            // Recommendation id and resource of the request's own: with shared customers every
            // request still makes a plan (nothing conflicts with an earlier one).
            return ("coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id)","customer_id":"\#(customer)","auto_approve":true,"execute_now":true,"recommendations":[{"id":"\#(id)","agent_id":"bench-agent","type":"cost","action":"migrate_to_spot","risk_level":"low","estimated_savings":100,"affected_resources":["i-\#(id)"],"priority":1,"confidence":0.9}]}"#,
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
                    #"{"kind":"coordinate","request_id":"\#(id)","reply_to":"\#(replyList)","customer_id":"\#(customer(producer: p, n: n, id: id))","recommendations":[{"id":"\#(id)","agent_id":"bench-agent","type":"cost","action":"scale_up","risk_level":"medium","affected_resources":["i-\#(id)"]}]}"#))
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

/// Follows `coord:events` and times each plan from its request to `plan.completed`, by
/// recommendation id; a second ending for one recommendation is a duplicate.
private final class PlanWatcher: @unchecked Sendable {
    private let subscriber: RedisSubscriber
    private let expected: Int
    private let sent = SendTimes()
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var failures = 0
    private var duplicates = 0
    private var ended = Set<String>()
    private let done = DispatchSemaphore(value: 0)
    private let stop = NSLock()
    private var stopped = false
    /// When the last expected plan ended.
    private var lastEnd: UInt64 = 0

    init(redis: RedisConfiguration, expected: Int) throws {
        subscriber = try RedisSubscriber(configuration: redis)
        try subscriber.subscribe(["coord:events"])
        self.expected = expected
        Thread.detachNewThread { [self] in follow() }
    }

    func expect(_ recommendation: String, at: UInt64) { sent.set(recommendation, at) }

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
            let recommendation = object["recommendation_id"] as? String ?? ""
            lock.lock()
            if !ended.insert(recommendation).inserted {
                duplicates += 1
                lock.unlock()
                continue
            }
            seen += 1
            if type != "plan.completed" { failures += 1 }
            if let sentAt = sent.get(recommendation) { latencies.append(Double(at &- sentAt) / 1e6) }
            lastEnd = at
            lock.unlock()
        }
        done.signal()
    }

    func wait(timeout: Double) throws -> (latencies: [Double], failures: Int, duplicates: Int, endedAt: UInt64) {
        var result = done.wait(timeout: .now() + timeout)
        // Listen a little longer for a late second ending of any plan.
        if result == .success {
            let deadline = Date().addingTimeInterval(1)
            while Date() < deadline, let message = try? subscriber.next(timeout: 0.2) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                      let type = object["type"] as? String,
                      ["plan.completed", "plan.rolled_back", "plan.cancelled"].contains(type) else { continue }
                lock.withLock { duplicates += 1 }
            }
            result = .success
        }
        stop.lock(); stopped = true; stop.unlock()
        if result == .timedOut { _ = done.wait(timeout: .now() + 1) }
        subscriber.close()
        lock.lock(); defer { lock.unlock() }
        if result == .timedOut { throw ValidationError("only \(latencies.count)/\(expected) plans ended within \(Int(timeout)) s") }
        return (latencies, failures, duplicates, lastEnd)
    }
}

/// Results gathered by the producer and collector threads.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var errors = 0
    private var duplicates = 0
    private var failures: [any Error] = []
    private var lastAnswer: UInt64 = 0

    func add(_ local: [Double], errors localErrors: Int, duplicates localDuplicates: Int, answeredAt: UInt64) {
        lock.withLock {
            latencies += local
            errors += localErrors
            duplicates += localDuplicates
            lastAnswer = max(lastAnswer, answeredAt)
        }
    }

    /// When the last collector had every reply it waited for.
    var answeredAt: UInt64 { lock.withLock { lastAnswer } }

    func fail(_ error: any Error) { lock.withLock { failures.append(error) } }

    var snapshot: ([Double], Int, Int, [any Error]) { lock.withLock { (latencies, errors, duplicates, failures) } }
}

/// One JSON line on stdout, written at once (stdout may be a pipe).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
