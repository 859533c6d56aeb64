import Foundation
import Testing
import TestSupport

/// Freezing a daemon process (SIGSTOP) and thawing it (SIGCONT): a daemon that is alive but
/// does nothing, as a long GC-like pause, a stopped container or a swapped-out host leaves it.
enum Freeze {
    /// SIGSTOP, and returns once the freeze is proven to have landed: the process is stopped
    /// (kill returns before the signal lands), and Redis has read and run everything it sent
    /// (`redisDrained`). Fails the test when either cannot be shown within 30 s (a stop lands
    /// once every thread of the process has run to take it: on a machine loaded by parallel
    /// suites and a CPU-heavy job, that has taken over 10 s).
    static func stop(_ process: Process, _ h: Harness) throws {
        let pid = process.processIdentifier
        kill(pid, SIGSTOP)
        let deadline = Date().addingTimeInterval(30)
        while !isStopped(pid) {
            guard Date() < deadline else {
                let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "gone"
                throw HarnessError.timeout("pid \(pid) not stopped 30 s after SIGSTOP: \(stat.prefix(80))")
            }
            Thread.sleep(forTimeInterval: 0.001)
        }
        var state = ""
        while true {
            let (drained, why) = try redisDrained(pid: pid, h)
            if drained { return }
            state = why
            guard Date() < deadline else { throw HarnessError.timeout("Redis still holds what pid \(pid) sent 30 s after SIGSTOP: \(state)") }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    static func thaw(_ process: Process) {
        kill(process.processIdentifier, SIGCONT)
    }

    /// The state in /proc/<pid>/stat, after the parenthesised command name: "pid (comm) T ...".
    static func isStopped(_ pid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return false }
        return text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T")
    }

    /// Whether Redis has read and run everything the (stopped) process `pid` sent it: on each of
    /// its TCP connections to the harness's server, nothing left in the process's send queue
    /// (unsent or unacknowledged), nothing unread in Redis's receive queue, and an empty query
    /// buffer in Redis (CLIENT LIST `qbuf=0`: no command half read or waiting). Redis runs one
    /// command at a time, so when CLIENT LIST answers none of them is half run. With its reason
    /// when not.
    static func redisDrained(pid: Int32, _ h: Harness) throws -> (Bool, String) {
        let port = h.server.port
        let sockets = try tcpSockets()
        // The process's side of each connection to Redis: its local port and send queue.
        let mine = sockets.filter { $0.pids.contains(pid) && $0.remotePort == port }
        guard !mine.isEmpty else { return (false, "no connection of pid \(pid) to port \(port) found") }
        let clients = try h.redis.send("CLIENT", "LIST").string ?? ""
        for socket in mine {
            if socket.sendQueue != 0 { return (false, "\(socket.sendQueue) bytes unsent from local port \(socket.localPort)") }
            guard let server = sockets.first(where: { $0.localPort == port && $0.remotePort == socket.localPort }) else {
                return (false, "Redis's side of local port \(socket.localPort) not found")
            }
            if server.receiveQueue != 0 { return (false, "\(server.receiveQueue) bytes unread by Redis from port \(socket.localPort)") }
            guard let client = clients.split(separator: "\n").first(where: { $0.split(separator: " ").contains("addr=127.0.0.1:\(socket.localPort)") })
            else { return (false, "no client of Redis at 127.0.0.1:\(socket.localPort)") }
            if !client.split(separator: " ").contains("qbuf=0") { return (false, "query buffer not empty: \(client)") }
        }
        return (true, "")
    }

    struct TCPSocket {
        var localPort: Int, remotePort: Int, receiveQueue: Int, sendQueue: Int, pids: Set<Int32>
    }

    /// Every established TCP socket on 127.0.0.1 with its queues and owning pids, from iproute2's
    /// `ss -tnpH state established` (netlink: /proc/net/tcp is not complete on every kernel this
    /// runs on).
    static func tcpSockets() throws -> [TCPSocket] {
        guard let ss = ["/usr/bin/ss", "/bin/ss", "/usr/sbin/ss", "/sbin/ss"].first(where: FileManager.default.isExecutableFile) else {
            throw HarnessError.malformed("iproute2's ss is needed to prove a freeze landed (apt-get install iproute2)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ss)
        process.arguments = ["-tnpH", "state", "established"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        let deadline = try ChildProcess.run(process, deadline: 10)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        try deadline.wait()
        guard process.terminationStatus == 0 else { throw HarnessError.malformed("ss exited \(process.terminationStatus)") }
        func port(_ address: Substring) -> Int? { address.split(separator: ":").last.flatMap { Int($0) } }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            // "Recv-Q Send-Q Local:Port Peer:Port users:((\"name\",pid=N,fd=M),...)"
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 4, let rq = Int(f[0]), let sq = Int(f[1]), let lp = port(f[2]), let rp = port(f[3]) else { return nil }
            var pids: Set<Int32> = []
            for part in line.split(whereSeparator: { $0 == "," || $0 == ")" }) where part.hasPrefix("pid=") {
                if let pid = Int32(part.dropFirst(4)) { pids.insert(pid) }
            }
            return TCPSocket(localPort: lp, remotePort: rp, receiveQueue: rq, sendQueue: sq, pids: pids)
        }
    }

    /// The worker id a daemon process runs under ("host-pid-suffix"), read from the live
    /// heartbeats (waits for its first one).
    static func workerID(of process: Process, _ h: Harness) throws -> String {
        var found: String?
        try h.wait("the heartbeat of pid \(process.processIdentifier)") {
            found = try h.scanKeys(h.keys.worker("*")).map { String($0.dropFirst(h.keys.worker("").count)) }
                .first { $0.contains("-\(process.processIdentifier)-") }
            return found != nil
        }
        return try #require(found)
    }
}
