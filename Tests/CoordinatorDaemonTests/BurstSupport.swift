import Foundation
import RedisClient
import Testing

/// A burst of small `coordinate` requests under one prefix, and the check that each was
/// answered exactly once: what the fault tests push before the fault and read after it.
extension Harness {
    /// Pushes `count` one-recommendation requests ("<prefix>-<n>", 50 customers, a resource
    /// each) with `replyTo`, in pipelines.
    func pushBurst(_ prefix: String, count: Int, replyTo: String) throws {
        var pushes: [RedisCommand] = []
        for n in 0..<count {
            pushes.append(RedisCommand("LPUSH", "coord:requests", Wire.coordinate(
                "\(prefix)-\(n)", customer: "cust-\(prefix)-\(n % 50)", replyTo: replyTo,
                [Wire.recommendation("rec-\(n)", resources: ["i-\(n)"])])))
            if pushes.count == 1000 { _ = try redis.pipeline(pushes); pushes.removeAll() }
        }
        if !pushes.isEmpty { _ = try redis.pipeline(pushes) }
    }

    /// The request ids answered on `list` (all ok) with how many times each, emptying the list.
    func takeAnswers(on list: String) throws -> [String: Int] {
        var answered: [String: Int] = [:]
        for reply in (try redis.send("LRANGE", list, 0, -1).array ?? []) {
            let object = try Harness.object(try #require(reply.bytes))
            #expect(object["ok"] as? Bool == true, "\(object)")
            answered[try #require(object["request_id"] as? String), default: 0] += 1
        }
        _ = try redis.send("DEL", list)
        return answered
    }

    /// Every one of `count` requests answered exactly once, and nothing dead-lettered.
    func expectAnsweredOnce(_ answered: [String: Int], count: Int) throws {
        #expect(answered.count == count)
        #expect(answered.values.allSatisfy { $0 == 1 })
        #expect(try deadLetters().isEmpty, "nothing innocent went to coord:dead")
    }
}

/// Faults that land while messages are in flight, and the daemon's own account of them.
extension Harness {
    /// Pauses every client's writes (`CLIENT PAUSE WRITE`, a minute) at a moment when the
    /// daemons hold messages in flight, and returns how many they hold. From then on no take,
    /// commit or hand-back changes Redis (each blocks until the pause ends, or Redis dies), so a
    /// fault injected now lands with exactly these messages in flight. When none was held, it
    /// unpauses, waits for one more reply on `replyList` (the daemons moved on) and tries again.
    @discardableResult
    func pauseWritesWithMessagesInFlight(replyList: String, timeout: Double = 60) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            _ = try redis.send("CLIENT", "PAUSE", 60_000, "WRITE")
            let held = try inflightCount()
            if held > 0 { return held }
            _ = try redis.send("CLIENT", "UNPAUSE")
            let answered = try length(replyList)
            guard Date() < deadline else { throw HarnessError.timeout("no message in flight at any pause for \(timeout) s") }
            try wait("one more reply on \(replyList)", timeout: max(1, deadline.timeIntervalSinceNow)) {
                try length(replyList) > answered
            }
        }
    }

    /// The names of the intake loops ("requests-1") holding messages in flight now, from their
    /// in-flight lists (`coord:inflight:<worker>:<queue>:<index>`).
    func loopsHoldingMessages() throws -> Set<String> {
        var loops: Set<String> = []
        for key in try scanKeys("\(keys.prefix):inflight:*") where try length(key) > 0 {
            let parts = key.split(separator: ":")
            guard parts.count >= 5, let index = Int(parts[parts.count - 1]) else {
                throw HarnessError.malformed("in-flight list \(key)")
            }
            loops.insert("\(parts[parts.count - 2])-\(index)")
        }
        return loops
    }

    /// INFO `section` as its fields.
    func info(_ section: String) throws -> [String: String] {
        let text = try redis.send("INFO", section).string ?? ""
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        guard !fields.isEmpty else { throw HarnessError.malformed("INFO \(section) answered \(text)") }
        return fields
    }

    /// How many error replies of `code` ("OOM", "READONLY", "LOADING") Redis has sent since it
    /// started (INFO errorstats): Redis's own count of what it refused.
    func errorReplies(_ code: String) throws -> Int {
        let stats = try info("errorstats")
        guard let field = stats["errorstat_\(code)"] else { return 0 }  // none sent yet
        guard let count = field.split(separator: "=").last.flatMap({ Int($0) }) else {
            throw HarnessError.malformed("errorstat_\(code):\(field)")
        }
        return count
    }
}

extension LogRecorder {
    /// The backoff steps (`retry_within`, seconds) of the "Redis unavailable or refusing writes"
    /// warnings the intake loop `loop` ("requests-0") logged from line `start` on, whose error
    /// contains `error` when given. One warning per pause: the steps double (to the 5 s cap),
    /// where a warning per message would repeat a step.
    func refusals(of loop: String, from start: Int, error: String? = nil) throws -> [Double] {
        try lines.dropFirst(start).filter { line in
            guard line.level == .warning, line.message.hasPrefix("\(loop): Redis unavailable or refusing writes") else { return false }
            guard let error else { return true }
            return line.metadata["error"]?.contains(error) == true
        }.map { line in
            guard let text = line.metadata["retry_within"], text.hasSuffix("s"), let step = Double(text.dropLast()) else {
                throw HarnessError.malformed("refusal logged without retry_within: \(line)")
            }
            return step
        }
    }

    /// Every refusal warning of `loop` from line `start` on came after a pause twice as long as
    /// the one before (or the 5 s cap): one line per pause, not one per message.
    func expectOneLinePerPause(of loop: String, from start: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let steps = try refusals(of: loop, from: start)
        #expect(zip(steps, steps.dropFirst()).allSatisfy { abs($1 - min(5, $0 * 2)) < 1e-9 },
                "\(loop) logged backoff steps \(steps)", sourceLocation: sourceLocation)
    }
}
