import ArgumentParser
import Foundation
import RedisClient
import TestSupport

/// The daemons under test, as separate processes of the built binary next to the bench.
final class Fleet {
    private var processes: [Process] = []
    private let redis: RedisConfiguration
    private let startedAt = Date()

    /// `extra` is passed to every daemon after the bench's own flags (`--daemon-arg`).
    init(count: Int, redis: RedisConfiguration, url: String, extra: [String] = []) throws {
        self.redis = redis
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("coordinatord")
        for _ in 0..<count {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["run", "--redis-url", url, "--sim-speed", "0", "--log-format", "json"] + extra
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try ChildProcess.run(process)
            processes.append(process)
        }
    }

    var pids: [Int32] { processes.map(\.processIdentifier) }

    /// Waits until every daemon this fleet started has a live heartbeat: a `coord:workers:<id>`
    /// hash that exists now (it has a TTL) naming this host, one of our pids and a start after
    /// ours. The index set of workers remembers every worker that ever ran, and with `--url` a
    /// shared Redis holds old ones, so neither the set nor a count of keys proves our daemons up.
    func waitUntilLive(timeout: Double = 20) throws {
        let connection = try RedisConnection(configuration: redis)
        defer { connection.close() }
        let deadline = Date().addingTimeInterval(timeout)
        let host = ProcessInfo.processInfo.hostName
        let ours = Set(pids.map(String.init))
        let since = startedAt.addingTimeInterval(-1)
        var live = 0
        while Date() < deadline {
            for process in processes where !process.isRunning {
                throw ValidationError("a daemon exited during start-up (status \(process.terminationStatus))")
            }
            var keys: [String] = []
            var cursor = "0"
            repeat {
                let reply = try connection.send("SCAN", cursor, "MATCH", "coord:workers:*", "COUNT", 1000, "TYPE", "hash")
                cursor = reply.array?.first?.string ?? "0"
                keys += (reply.array?.last?.array ?? []).compactMap(\.string)
            } while cursor != "0"
            let fields = try connection.pipeline(keys.map { RedisCommand("HMGET", $0, "host", "pid", "started_at") })
            live = fields.filter { reply in
                let values = (reply.array ?? []).map(\.string)
                guard values.count == 3, values[0] == host, let pid = values[1], ours.contains(pid) else { return false }
                guard let started = values[2].flatMap(Self.parse) else { return true }
                return started >= since
            }.count
            if live >= processes.count { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ValidationError("only \(live)/\(processes.count) daemons showed a live heartbeat within \(Int(timeout)) s")
    }

    private static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// SIGTERM, then SIGKILL for any daemon still running after 20 s.
    func stop() {
        for process in processes where process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(20)
        for process in processes {
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }
}

/// Resident memory of a process in kB (VmRSS from /proc/<pid>/status), nil where unavailable.
func residentKilobytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }
    return nil
}

/// CPU time a process has used so far, in seconds (utime + stime from /proc/<pid>/stat).
func processCPUSeconds(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // Fields after the command name; utime and stime are fields 14 and 15 of the whole line.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// One section of Redis's INFO, as its `field:value` lines.
func redisInfo(_ connection: RedisConnection, _ section: String) throws -> [Substring: Substring] {
    var fields: [Substring: Substring] = [:]
    for line in (try connection.send("INFO", section).string ?? "").split(whereSeparator: \.isNewline) {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2 { fields[parts[0]] = parts[1] }
    }
    return fields
}

/// Redis's CPU seconds so far (INFO cpu): its own threads, and its children (AOF rewrites, saves).
func redisCPUSeconds(_ connection: RedisConnection) throws -> (main: Double, children: Double) {
    let info = try redisInfo(connection, "cpu")
    func seconds(_ field: Substring) -> Double { info[field].flatMap { Double($0) } ?? 0 }
    return (seconds("used_cpu_user") + seconds("used_cpu_sys"),
            seconds("used_cpu_user_children") + seconds("used_cpu_sys_children"))
}

/// Commands Redis has run so far (INFO commandstats, every command's `calls` summed; Redis 7
/// counts the commands a script runs as well as the script's own call). Per request, this is
/// the work a request costs Redis, free of the machine's speed.
func redisCommandCalls(_ connection: RedisConnection) throws -> Int {
    try redisInfo(connection, "commandstats").reduce(0) { calls, field in
        // cmdstat_<command>:calls=N,usec=...
        guard field.key.hasPrefix("cmdstat_"), let start = field.value.range(of: "calls=")?.upperBound else { return calls }
        return calls + (Int(field.value[start...].prefix(while: \.isNumber)) ?? 0)
    }
}

/// Redis `used_memory` in bytes (INFO memory).
func redisUsedMemory(_ connection: RedisConnection) throws -> Int? {
    try redisInfo(connection, "memory")["used_memory"].flatMap { Int($0) }
}

/// What a stretch of load cost: Redis's CPU (its own threads), the daemons' CPU, the commands
/// Redis ran and the bytes it received, read before and after (`per(requests:)`). Redis's
/// figures include the load generator's own pushes and pops (one LPUSH per request and its
/// share of the BLMPOPs): that is what Redis does for a request, whoever sends it.
struct CostMeter {
    struct Reading {
        var redisCPU: Double
        var daemonCPU: Double
        var commands: Int
        var bytesIn: Int
    }

    let connection: RedisConnection
    let pids: [Int32]

    func read() throws -> Reading {
        let stats = try redisInfo(connection, "stats")
        return Reading(redisCPU: try redisCPUSeconds(connection).main,
                       daemonCPU: pids.compactMap(processCPUSeconds(pid:)).reduce(0, +),
                       commands: try redisCommandCalls(connection),
                       bytesIn: stats["total_net_input_bytes"].flatMap { Int($0) } ?? 0)
    }

    /// JSON fields of the cost per request between two readings (the INFO calls themselves
    /// are a handful of commands and bytes, nothing per request).
    static func fields(from before: Reading, to after: Reading, requests: Int) -> [String] {
        let n = Double(max(1, requests))
        return [
            "\"redis_cpu_us\":" + String(format: "%.1f", (after.redisCPU - before.redisCPU) / n * 1e6),
            "\"daemon_cpu_us\":" + String(format: "%.1f", (after.daemonCPU - before.daemonCPU) / n * 1e6),
            "\"redis_commands\":" + String(format: "%.2f", Double(after.commands - before.commands) / n),
            "\"redis_bytes_in\":" + String(format: "%.0f", Double(after.bytesIn - before.bytesIn) / n),
        ]
    }
}
