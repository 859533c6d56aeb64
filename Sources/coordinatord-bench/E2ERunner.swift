import ArgumentParser
import Foundation
import CoordinatorDaemon
import RedisClient

/// Producers and collectors, one connection each, on threads of their own.
struct Runner {
    let redis: RedisConfiguration
    let benchCase: E2EBench.Case
    let producers: Int
    /// 0: every request has a customer of its own; N: requests go to N customers round-robin.
    let customers: Int
    let customerPrefix: String
    /// Signs every message (`coordinate-signed`).
    var signer: BenchSigner?
    /// On a cluster: push each `coordinate` straight onto its customer's partition queue
    /// (`coord:{p<k>}:requests`, PROTOCOL.md section 11) instead of the entry queue.
    var partitions: Partitions?

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
        let connection = try BenchConnection(redis)
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
            guard let value = try connection.pop(replyList, timeout: 120) else {
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
        let setup = try BenchConnection(redis)
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
        let connection = try BenchConnection(redis)
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
        let connection = try BenchConnection(redis)
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
            guard let values = try connection.pop(replyList, count: 256, timeout: 10), !values.isEmpty else {
                throw ValidationError("replies stopped coming (\(received)/\(run.perProducer))")
            }
            // A reply due before it was sent (paced, producer behind) still counts from its due time.
            take(values, at: Self.now())
        }
        // The last reply is in: the rate counts to here, not through the wait below.
        let answeredAt = Self.now()
        // Listen a little longer: a late second reply to any request is a duplicate.
        if let late = try connection.pop(replyList, count: 256, timeout: 1) {
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
            let queue = partitions.map { "coord:{p\($0.of(customer: customer))}:requests" } ?? "coord:requests"
            return (queue,
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

    private func prepareApprovals(_ connection: BenchConnection, label: String, perProducer: Int) throws -> [[String]] {
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
            guard let value = try connection.pop(replyList, timeout: 30),
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
