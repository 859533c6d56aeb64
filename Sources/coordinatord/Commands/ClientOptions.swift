import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient

/// What every command for people takes: where Redis is, the key prefix, and `--json`.
struct ClientOptions: ParsableArguments {
    @Option(help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Key prefix (env COORD_PREFIX).") var prefix: String?
    @Flag(help: "Print JSON lines instead of a table.") var json = false

    var keys: Keys {
        Keys(prefix: prefix ?? Environment.value("COORD_PREFIX") ?? "coord")
    }

    var url: String {
        redisURL ?? Environment.value("REDIS_URL") ?? "redis://127.0.0.1:6379/0"
    }

    func validate() throws {
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("--redis-url: \(error)")
        }
        let prefix = keys.prefix
        guard !prefix.contains(where: { $0 == " " || $0 == "*" }) else {
            throw ValidationError("--prefix: must be without spaces or '*'")
        }
    }

    /// A connection, or exit 1 saying why there is none.
    func connect() throws -> RedisConnection {
        do {
            let configuration = try RedisConfiguration(url: url)
            let connection = try RedisConnection(configuration: configuration)
            _ = try connection.send("PING")
            return connection
        } catch {
            throw CommandFailure("cannot reach Redis at \((try? RedisConfiguration(url: url).redactedURL) ?? url): \(error)")
        }
    }
}

/// An error answer: printed on standard error, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Redis's clock (the daemon compares times on it too), falling back to ours.
func redisNow(_ connection: RedisConnection) -> Date {
    guard let parts = try? connection.send("TIME").array?.compactMap({ $0.string.flatMap(Double.init) }), parts.count == 2 else {
        return Date()
    }
    return Date(timeIntervalSince1970: parts[0] + parts[1] / 1_000_000)
}

/// Runs a command body, turning a Redis error or a `CommandFailure` into exit status 1 with
/// the message on standard error.
func answering(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CommandFailure {
        Terminal.error(failure.description)
        throw ExitCode(1)
    } catch let error as RedisError {
        Terminal.error("\(error)")
        throw ExitCode(1)
    }
}

/// A JSON object read from bytes, or nil.
func jsonObject(_ bytes: [UInt8]?) -> [String: Any]? {
    guard let bytes else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
}

/// Prints one JSON line.
func printJSONLine(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
        Terminal.line(String(decoding: data, as: UTF8.self))
    }
}

/// A unique suffix for client keys and request ids.
func randomToken() -> String {
    var generator = SystemRandomNumberGenerator()
    return String(generator.next() as UInt64, radix: 36) + String(generator.next() as UInt32, radix: 36)
}

extension [String: Any] {
    func string(_ key: String) -> String? { self[key] as? String }
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    func date(_ key: String) -> Date? { string(key).flatMap(Timestamps.parse) }
}

/// RFC 3339 timestamps as the daemon writes them (with milliseconds), and relative times.
enum Timestamps {
    static func parse(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = withFraction.date(from: text) { return date }
        return ISO8601DateFormatter().date(from: text)
    }

    /// "5 s", "2 min", "23 h", "3 d".
    static func span(_ seconds: Double) -> String {
        let s = abs(seconds)
        if s < 1 { return "0 s" }
        if s < 60 { return "\(Int(s)) s" }
        if s < 3600 { return "\(Int(s / 60)) min" }
        if s < 2 * 86_400 { return "\(Int(s / 3600)) h" }
        return "\(Int(s / 86_400)) d"
    }

    /// "2 min ago" / "in 23 h".
    static func relative(_ date: Date, now: Date) -> String {
        let delta = date.timeIntervalSince(now)
        if abs(delta) < 1 { return "now" }
        return delta < 0 ? "\(span(delta)) ago" : "in \(span(delta))"
    }

    /// "1.2 s", "340 ms".
    static func duration(ms: Int) -> String {
        ms < 1000 ? "\(ms) ms" : String(format: "%.1f s", Double(ms) / 1000)
    }
}
