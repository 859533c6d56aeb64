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

    /// On a cluster: waits until every one of the `partitions` leases (`coord:{p<k>}:owner`,
    /// worker ids `<host>-<pid>-<suffix>`) is held by a daemon of this fleet, each holding its
    /// share (the first one up takes them all and gives up the others' share once it sees
    /// them), then a moment for the partitions' loops to start.
    func waitUntilHolding(partitions: Int, timeout: Double = 60) throws {
        let client = RedisClusterClient(configuration: redis)
        defer { client.close() }
        let deadline = Date().addingTimeInterval(timeout)
        let ours = Set(pids)
        var held: [Int32] = []
        while Date() < deadline {
            for process in processes where !process.isRunning {
                throw ValidationError("a daemon exited during start-up (status \(process.terminationStatus))")
            }
            let leases = try client.pipelinePerMaster((0..<partitions).map { RedisCommand("GET", "coord:{p\($0)}:owner") })
            held = leases.compactMap { $0.string?.split(separator: "-").dropLast().last.flatMap { Int32($0) } }.filter(ours.contains)
            let share = partitions / max(1, processes.count)
            if held.count == partitions, ours.allSatisfy({ pid in held.filter { $0 == pid }.count >= share }) {
                Thread.sleep(forTimeInterval: 1)
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ValidationError("the fleet held \(held.count)/\(partitions) partitions after \(Int(timeout)) s")
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
