import Foundation
import RedisClient
import Testing

/// Small helpers for the store's tests (history, retention, bursts, commit isolation).
extension Harness {
    /// `INFO commandstats` as command -> calls.
    func commandCalls() throws -> [String: Int] {
        let text = try redis.send("INFO", "commandstats").string ?? ""
        var calls: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let parts = line.dropFirst("cmdstat_".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            for field in parts[1].split(separator: ",") where field.hasPrefix("calls=") {
                calls[String(parts[0])] = Int(field.dropFirst("calls=".count))
            }
        }
        return calls
    }

    /// Every key under `coord:` (a test's Redis holds few keys, so KEYS is fine here).
    func allKeys() throws -> [String] {
        try #require(try redis.send("KEYS", "coord:*").array).map { try #require($0.string) }
    }

    /// Pushes many messages in pipelines of 500.
    func pushAll(_ messages: [String], to queue: String = "coord:requests") throws {
        var start = 0
        while start < messages.count {
            let end = min(start + 500, messages.count)
            _ = try redis.pipeline(messages[start..<end].map { RedisCommand("LPUSH", queue, $0) })
            start = end
        }
    }

    /// The ids of a coordinate reply's kept recommendations and of its discarded ones with reasons.
    /// Strict: a reply without a result, or with a malformed recommendation or discard, fails
    /// the test instead of reading as "nothing kept, nothing discarded".
    static func outcome(_ reply: [String: Any]) throws -> (kept: [String], discarded: [String: String]) {
        let result = try #require(reply["result"] as? [String: Any], "no result in \(reply)")
        let kept = try #require(result["recommendations"] as? [[String: Any]], "\(result)").map { try #require($0["id"] as? String) }
        var discarded: [String: String] = [:]
        for entry in try #require(result["discarded"] as? [[String: Any]], "\(result)") {
            discarded[try #require(entry["id"] as? String)] = try #require(entry["reason"] as? String)
        }
        return (kept, discarded)
    }
}
