import ArgumentParser
import Foundation

/// One e2e case's result: rate, latencies, errors, duplicates and what it cost.
struct Measurement {
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

/// Send times by request id, shared between a producer and its collector.
final class SendTimes: @unchecked Sendable {
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

/// Results gathered by the producer and collector threads.
final class Collected: @unchecked Sendable {
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
