import Crypto
import Foundation
import RedisClient
import TestSupport
@testable import CoordinatorDaemon

/// A real redis-server, a built daemon (`coordinatord run`, simulated executor) and the built
/// console (`coordinatord web`), all started by the test and stopped by `stop()`.
final class WebEnvironment: @unchecked Sendable {
    let redis: RedisServer
    let connection: RedisConnection
    private(set) var processes: [Process] = []
    private(set) var webPort = 0
    /// The console's ports, held until `stop()`: the console binds a held port (it sets
    /// SO_REUSEADDR), and no server of a test running in parallel can take it first.
    private var reservations: [PortReservation] = []
    let directory: URL

    init() throws {
        redis = try RedisServer.start()
        connection = try redis.client()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("web-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    static var binary: URL { BuiltProduct.url("coordinatord") }

    func launch(_ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        process.environment = ChildProcess.environment(["REDIS_URL": redis.url])
        let logURL = directory.appendingPathComponent(log)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        try ChildProcess.run(process)
        processes.append(process)
        return process
    }

    /// The daemon, simulated steps at `simSpeed` of the seed's durations.
    func startDaemon(_ extra: [String] = []) throws {
        _ = try launch(["run", "--executor", "simulated", "--sim-speed", "0.05", "--heartbeat-ttl", "2"] + extra, log: "daemon.log")
        try waitUntil(timeout: 15, "a live daemon heartbeat") {
            !((try? self.connection.send("KEYS", "coord:workers:*").array) ?? []).isEmpty
        }
    }

    /// The console on a free port; returns once it answers.
    @discardableResult
    func startWeb(_ extra: [String] = []) throws -> Process {
        let reservation = try PortReservation(forListener: true)
        reservations.append(reservation)
        webPort = reservation.port
        let process = try launch(["web", "--port", "\(webPort)"] + extra, log: "web.log")
        try waitUntil(timeout: 15, "the console to answer on port \(webPort)") {
            (try? HTTP.request("GET", port: self.webPort, path: "/static/style.css"))?.status == 200
        }
        return process
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }

    func stop() {
        for process in processes.reversed() { ChildProcess.stop(process) }
        processes.removeAll()
        connection.close()
        redis.stop()
        for reservation in reservations { reservation.release() }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A `coordinate` request (pushed as `message`, signed or not) for `customer` with one
    /// recommendation per entry of `recommendations` (id, title, action, risk).
    static func coordinate(customer: String, autoApprove: Bool, executeNow: Bool = true,
                           _ recommendations: [(id: String, title: String, action: String, risk: String)],
                           agent: String = "cost-agent-1") throws -> String {
        let recs: [[String: Any]] = recommendations.map { rec in
            ["id": rec.id, "agent_id": agent, "type": "cost", "title": rec.title, "action": rec.action,
             "risk_level": rec.risk, "affected_resources": ["res-\(rec.id)"], "description": "why: \(rec.title)",
             "estimated_savings": 120.5, "priority": 5, "confidence": 0.9]
        }
        let request: [String: Any] = ["kind": "coordinate", "request_id": "req-\(UUID().uuidString.prefix(8))", "customer_id": customer,
                                      "auto_approve": autoApprove, "execute_now": executeNow, "recommendations": recs]
        return String(decoding: try JSONSerialization.data(withJSONObject: request, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Pending approval ids of `customer`, once there are `count`.
    func pendingApprovals(customer: String, count: Int, timeout: Double = 15) throws -> [String] {
        var ids: [String] = []
        try waitUntil(timeout: timeout, "\(count) pending approvals of \(customer)") {
            ids = ((try? self.connection.send("ZRANGE", "coord:{\(customer)}:approvals:pending", 0, -1).array) ?? []).compactMap(\.string)
            return ids.count >= count
        }
        return ids
    }
}

struct WaitTimeout: Error, CustomStringConvertible {
    var description: String
}

func waitUntil(timeout: Double, _ what: String, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.05)
    }
    throw WaitTimeout(description: "timed out after \(timeout) s waiting for \(what)")
}

/// HTTP/1.1 over a plain socket, every header as the test writes it (`Host`, `Origin`, cookies):
/// what a browser or an attacker's page could send.
enum HTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String

        func header(_ name: String) -> String? { headers[name.lowercased()] }

        /// The session cookie the console set.
        var session: String? {
            guard let cookie = header("set-cookie"), let start = cookie.range(of: "cw_session=") else { return nil }
            return String(cookie[start.upperBound...].prefix { $0 != ";" })
        }

        /// The CSRF token in the page's meta tag.
        var csrfToken: String? {
            guard let start = body.range(of: "<meta name=\"csrf-token\" content=\"") else { return nil }
            return String(body[start.upperBound...].prefix { $0 != "\"" })
        }
    }

    /// One request, its answer read to the end; with `readFor`, a streaming answer (Server-Sent
    /// Events) read for that many seconds and then cut, or as soon as `until` holds for what was
    /// read so far (it sees the answer after every read).
    static func request(_ method: String, port: Int, path: String, headers: [String: String] = [:], body: String? = nil,
                        host: String? = nil, readFor: Double? = nil, until: ((Response) -> Bool)? = nil) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WaitTimeout(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = readFor == nil ? timeval(tv_sec: 10, tv_usec: 0) : timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw WaitTimeout(description: "connect to \(port): \(errno)") }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\n"
        if readFor == nil { text += "Connection: close\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        let bodyBytes = Array((body ?? "").utf8)
        if body != nil { text += "Content-Length: \(bodyBytes.count)\r\n" }
        let bytes = Array((text + "\r\n").utf8) + bodyBytes
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw WaitTimeout(description: "write: \(errno)") }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(readFor ?? 3600)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                received += buffer[0..<n]
                if let until, let sofar = try? parse(received), until(sofar) { break }
            } else if n == 0 || readFor == nil {
                break
            }
        }
        return try parse(received)
    }

    static func parse(_ bytes: [UInt8]) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<($0 + 4)]) == separator }) else {
            throw WaitTimeout(description: "no HTTP response: \(String(decoding: bytes, as: UTF8.self))")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = (index..<(bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
                  let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            out += bytes[start..<min(bytes.count, start + size)]
            index = start + size + 2
        }
        return out
    }
}
