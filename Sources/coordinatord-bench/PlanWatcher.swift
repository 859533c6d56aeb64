import ArgumentParser
import Foundation
import RedisClient

/// Follows `coord:events` and times each plan from its request to `plan.completed`, by
/// recommendation id; a second ending for one recommendation is a duplicate.
final class PlanWatcher: @unchecked Sendable {
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
