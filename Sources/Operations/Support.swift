import Foundation
import RedisClient

/// An error answer for a person: the command prints it and exits 1, the console shows it.
public struct OperationFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ message: String) { description = message }
}

/// Redis's clock (the daemon compares times on it too), falling back to ours.
public func redisNow(_ connection: RedisConnection) -> Date {
    guard let parts = try? connection.send("TIME").array?.compactMap({ $0.string.flatMap(Double.init) }), parts.count == 2 else {
        return Date()
    }
    return Date(timeIntervalSince1970: parts[0] + parts[1] / 1_000_000)
}

/// A JSON object read from bytes, or nil.
public func jsonObject(_ bytes: [UInt8]?) -> [String: Any]? {
    guard let bytes else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
}

/// A unique suffix for client keys and request ids.
public func randomToken() -> String {
    var generator = SystemRandomNumberGenerator()
    return String(generator.next() as UInt64, radix: 36) + String(generator.next() as UInt32, radix: 36)
}

extension [String: Any] {
    public func string(_ key: String) -> String? { self[key] as? String }
    public func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    public func date(_ key: String) -> Date? { string(key).flatMap(Timestamps.parse) }
}

/// A Redis hash reply (`HGETALL`) as name -> value, numbers as Int.
public func hashFields(_ reply: RedisReply) -> [String: Any] {
    var fields: [String: Any] = [:]
    let parts = reply.array ?? []
    var index = 0
    while index + 1 < parts.count {
        if let name = parts[index].string, let value = parts[index + 1].string {
            fields[name] = Int(value).map { $0 as Any } ?? value
        }
        index += 2
    }
    return fields
}

/// RFC 3339 timestamps as the daemon writes them (with milliseconds), and relative times.
public enum Timestamps {
    public static func parse(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = withFraction.date(from: text) { return date }
        return ISO8601DateFormatter().date(from: text)
    }

    /// "5 s", "2 min", "23 h", "3 d".
    public static func span(_ seconds: Double) -> String {
        let s = abs(seconds)
        if s < 1 { return "0 s" }
        if s < 60 { return "\(Int(s)) s" }
        if s < 3600 { return "\(Int(s / 60)) min" }
        if s < 2 * 86_400 { return "\(Int(s / 3600)) h" }
        return "\(Int(s / 86_400)) d"
    }

    /// "2 min ago" / "in 23 h".
    public static func relative(_ date: Date, now: Date) -> String {
        let delta = date.timeIntervalSince(now)
        if abs(delta) < 1 { return "now" }
        return delta < 0 ? "\(span(delta)) ago" : "in \(span(delta))"
    }

    /// "1.2 s", "340 ms".
    public static func duration(ms: Int) -> String {
        ms < 1000 ? "\(ms) ms" : String(format: "%.1f s", Double(ms) / 1000)
    }
}
