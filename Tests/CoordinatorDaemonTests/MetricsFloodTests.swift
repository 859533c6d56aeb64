import Foundation
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// The metrics port of the built binary, flooded as an attacker would (PROTOCOL.md
    /// section 7). Raw sockets, so the test controls exactly what is sent and
    /// what is never read.
    @Suite("Metrics port under a flood (attack 2)", .sharesMachine)
    struct MetricsFloodTests {
        /// The binary with `--metrics-port`, once its endpoint answers.
        private func startBinary(_ h: Harness) throws -> (process: Process, port: Int) {
            let port = try h.metricsPort()
            let process = try h.launch(["run", "--metrics-port", "\(port)", "--sim-speed", "0"])
            try h.wait("the endpoint to answer") { (try? RawHTTP.scrape(port: port, timeout: 2))?.status == 200 }
            return (process, port)
        }

        @Test("20,000 pipelined GET /metrics on one socket, never read, grow the daemon's RSS by less than 10 MB")
        func pipelinedNeverRead() throws {
            let h = try Harness()
            let (process, port) = try startBinary(h)
            let pid = process.processIdentifier
            let before = try #require(RawHTTP.residentKB(pid))

            let fd = try RawHTTP.connect(port: port)
            defer { close(fd) }
            // A send that cannot go on (the daemon stopped reading, or closed) gives up after 5 s.
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let request = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            var batch: [UInt8] = []
            for _ in 0..<100 { batch += request }
            var peak = before
            var sent = 0
            sending: for _ in 0..<(20_000 / 100) {
                var offset = 0
                while offset < batch.count {
                    let n = batch[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break sending }
                    offset += n
                }
                sent += 100
                if sent % 2000 == 0, let now = RawHTTP.residentKB(pid) { peak = max(peak, now) }
            }
            // Memory is sampled for 3 s more while the daemon deals with what it read (answers it,
            // drops it or closes the connection; any of these is fine, growing is not). A bounded
            // window, not a proof: what is measured is what happens in it, so nothing marks its end.
            let end = Date().addingTimeInterval(3)
            while Date() < end {
                if let now = RawHTTP.residentKB(pid) { peak = max(peak, now) }
                Thread.sleep(forTimeInterval: 0.1)
            }
            let grownMB = Double(peak - before) / 1024
            print("metrics flood: \(sent) pipelined requests sent; daemon RSS \(before / 1024) MiB before, peak \(peak / 1024) MiB (+\(String(format: "%.1f", grownMB)) MB)")
            #expect(grownMB < 10, "RSS grew by \(grownMB) MB")
            // And it still answers a scrape.
            let answer = try RawHTTP.scrape(port: port, timeout: 2)
            #expect(answer.status == 200)
            #expect(answer.body.contains("coordinatord_up 1"))
        }

        @Test("with 2,000 half-sent requests held (and the daemon at systemd's 1,024 descriptors), a scrape is answered within 2 s")
        func halfOpenConnections() throws {
            let h = try Harness()
            let (process, port) = try startBinary(h)
            let pid = process.processIdentifier
            // systemd's default soft limit, which the attack exhausted.
            try RawHTTP.limitDescriptors(pid: pid, soft: 1024)
            // This process needs room for 2,000 sockets of its own.
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            if limit.rlim_cur < 4096 {
                limit.rlim_cur = min(4096, limit.rlim_max)
                setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            }

            let held = RawHTTP.halfSent(port: port, count: 2000)
            defer { for fd in held.sockets { close(fd) } }
            print("metrics flood: \(held.sockets.count) connections opened, \(held.sent) sent half a request")
            #expect(held.sockets.count >= 1900, "could open only \(held.sockets.count) sockets")

            let started = Date()
            let answer = try RawHTTP.scrape(port: port, timeout: 2)
            let took = Date().timeIntervalSince(started)
            print("metrics flood: a scrape with the half-sent requests held took \(String(format: "%.3f", took)) s")
            #expect(answer.status == 200)
            #expect(answer.body.contains("coordinatord_up 1"))
            #expect(took < 2)
        }

        @Test("the 65th connection closes the oldest without a complete request; a connection idle for 10 s is closed")
        func evictionAndIdle() throws {
            let h = try Harness()
            let (_, port) = try startBinary(h)
            let partial = Array("GET /metrics HTTP/1.1\r\n".utf8)
            var sockets: [Int32] = []
            defer { for fd in sockets { close(fd) } }
            for _ in 0..<64 {
                let fd = try RawHTTP.connect(port: port)
                sockets.append(fd)
                // Connected one after another: accepted in this order (the kernel's accept queue
                // is first in, first out), so sockets[0] is the oldest.
                _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            // The oldest is still open while the table has room.
            #expect(!RawHTTP.closedByPeer(sockets[0], within: 0.3))
            let newest = try RawHTTP.connect(port: port)
            sockets.append(newest)
            #expect(RawHTTP.closedByPeer(sockets[0], within: 3), "the oldest half-sent connection was not closed")
            #expect(!RawHTTP.closedByPeer(sockets[1], within: 0.2), "more than the oldest was closed")
            // The rest, never completing their requests, are closed once idle for 10 s.
            #expect(RawHTTP.closedByPeer(sockets[1], within: 15), "a connection idle for 10 s stayed open")
        }
    }
}

/// Plain sockets to the metrics endpoint, for tests that must control exactly what is sent.
enum RawHTTP {
    struct Answer {
        var status: Int
        var body: String
    }

    static func connect(port: Int, nonBlocking: Bool = false) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.malformed("socket: \(String(cString: strerror(errno)))") }
        if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 && !(nonBlocking && errno == EINPROGRESS) {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HarnessError.malformed("connect to 127.0.0.1:\(port): \(reason)")
        }
        return fd
    }

    /// One `GET /metrics` on a new connection, answered within `timeout` seconds or thrown.
    static func scrape(port: Int, timeout: Double) throws -> Answer {
        let deadline = Date().addingTimeInterval(timeout)
        let fd = try connect(port: port, nonBlocking: true)
        defer { close(fd) }
        guard wait(fd, for: Int16(POLLOUT), until: deadline) else { throw HarnessError.timeout("connect within \(timeout) s") }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw HarnessError.malformed("send: \(String(cString: strerror(errno)))")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            guard wait(fd, for: Int16(POLLIN), until: deadline) else { throw HarnessError.timeout("no whole answer within \(timeout) s") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return Answer(status: status, body: body)
    }

    /// `count` connections, each sent the first line of a request and nothing more, opened
    /// without waiting on a daemon that does not accept them (non-blocking connects, 100 at a time).
    static func halfSent(port: Int, count: Int) -> (sockets: [Int32], sent: Int) {
        let partial = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8)
        var sockets: [Int32] = []
        var sent = 0
        while sockets.count < count {
            var batch: [Int32] = []
            for _ in 0..<min(100, count - sockets.count) {
                guard let fd = try? connect(port: port, nonBlocking: true) else { break }
                batch.append(fd)
            }
            guard !batch.isEmpty else { break }
            let deadline = Date().addingTimeInterval(0.5)
            for fd in batch where wait(fd, for: Int16(POLLOUT), until: deadline) {
                if partial.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == partial.count { sent += 1 }
            }
            sockets += batch
        }
        return (sockets, sent)
    }

    /// Whether the peer closed `fd` (a read of 0 or a reset) within `seconds`.
    static func closedByPeer(_ fd: Int32, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while wait(fd, for: Int16(POLLIN), until: deadline) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return true }
        }
        return false
    }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: Date) -> Bool {
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(left * 1000) + 1)
            if ready > 0 { return entry.revents & (events | Int16(POLLHUP) | Int16(POLLERR)) != 0 }
            if ready < 0 && errno != EINTR { return false }
        }
    }

    /// Resident memory of `pid` in kB (VmRSS).
    static func residentKB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    /// Sets another process's soft RLIMIT_NOFILE with util-linux `prlimit`, and checks it took.
    static func limitDescriptors(pid: Int32, soft: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--pid", "\(pid)", "--nofile=\(soft):"]
        let deadline = try ChildProcess.run(process, deadline: 30)
        try deadline.wait()
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        guard line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == Substring("\(soft)") else {
            throw HarnessError.malformed("prlimit did not set the daemon's descriptor limit: \(line)")
        }
    }
}
