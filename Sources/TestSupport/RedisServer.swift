import Foundation
import RedisClient

/// A real redis-server for tests and benchmarks: its own free port on 127.0.0.1, its own
/// temporary directory, AOF with fsync always (so `restart()` keeps the data), no RDB.
/// Every started server is also killed by an `atexit` handler, so an aborted run leaves none
/// behind.
public final class RedisServer: @unchecked Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: Int
    public let password: String?
    /// The unix socket path when started with `unixSocket: true`.
    public let unixSocketPath: String?
    /// The server's working directory (AOF files, log).
    public let directory: URL
    private let arguments: [String]
    private let lock = NSLock()
    private var process: Process?

    /// Starts redis-server (from PATH, else /usr/bin/redis-server) and waits until it answers PING.
    public static func start(password: String? = nil, arguments: [String] = [], unixSocket: Bool = false) throws -> RedisServer {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("redis-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: Error?
        for _ in 0..<5 {
            let server = RedisServer(
                port: try freePort(), password: password, arguments: arguments, directory: directory,
                unixSocketPath: unixSocket ? directory.appendingPathComponent("redis.sock").path : nil)
            do {
                try server.launch()
                return server
            } catch {
                lastError = error
                // Another process took the port between our probe and the server's bind: retry.
                if !server.logTail().contains("Address already in use") { break }
            }
        }
        try? FileManager.default.removeItem(at: directory)
        throw lastError ?? StartError(description: "redis-server did not start")
    }

    private init(port: Int, password: String?, arguments: [String], directory: URL, unixSocketPath: String?) {
        self.port = port
        self.password = password
        self.arguments = arguments
        self.directory = directory
        self.unixSocketPath = unixSocketPath
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// "redis://127.0.0.1:PORT/0", with ":password@" when there is one.
    public var url: String {
        let auth = password.map { ":\($0)@" } ?? ""
        return "redis://\(auth)127.0.0.1:\(port)/0"
    }

    public var configuration: RedisConfiguration {
        RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), password: password)
    }

    /// A new connection to this server.
    public func client() throws -> RedisConnection {
        try RedisConnection(configuration: configuration)
    }

    /// SIGTERM and wait. Idempotent.
    public func stop() {
        terminate(signal: SIGTERM)
    }

    /// SIGKILL and wait: a simulated crash (writes already fsynced by AOF survive).
    public func kill() {
        terminate(signal: SIGKILL)
    }

    /// Stops and starts again on the same port and directory; the data is kept.
    public func restart() throws {
        stop()
        var lastError: Error?
        for _ in 0..<20 {
            do {
                try launch()
                return
            } catch {
                lastError = error
                if !logTail().contains("Address already in use") { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        throw lastError!
    }

    /// The last lines of the server's log.
    public func logTail(lines: Int = 20) -> String {
        let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func launch() throws {
        let process = Process()
        process.executableURL = Self.executable()
        var args = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--dir", directory.path, "--daemonize", "no",
            "--logfile", directory.appendingPathComponent("redis.log").path,
        ]
        if let password { args += ["--requirepass", password] }
        if let unixSocketPath { args += ["--unixsocket", unixSocketPath, "--unixsocketperm", "700"] }
        args += arguments
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildProcess.run(process)
        ServerRegistry.shared.insert(process.processIdentifier)
        lock.lock()
        self.process = process
        lock.unlock()

        let deadline = Date(timeIntervalSinceNow: 5)
        while Date() < deadline {
            if !process.isRunning { break }
            if let connection = try? RedisConnection(configuration: configuration) {
                defer { connection.close() }
                if (try? connection.send("PING")) != nil { return }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let running = process.isRunning
        terminate(signal: SIGKILL)
        throw StartError(description: "redis-server on port \(port) \(running ? "did not answer PING within 5 s" : "exited"); log:\n\(logTail())")
    }

    private func terminate(signal: Int32) {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        guard let process else { return }
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        ServerRegistry.shared.remove(process.processIdentifier)
    }

    private static func executable() -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        return URL(fileURLWithPath: "/usr/bin/redis-server")
    }

    /// A port the kernel considers free right now (bind to port 0 and read it back).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw StartError(description: "bind: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw StartError(description: "getsockname: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The pids of running servers, killed at exit.
private final class ServerRegistry: @unchecked Sendable {
    static let shared: ServerRegistry = {
        let registry = ServerRegistry()
        atexit { ServerRegistry.shared.killAll() }
        return registry
    }()

    private let lock = NSLock()
    private var pids: Set<Int32> = []

    func insert(_ pid: Int32) {
        lock.lock()
        pids.insert(pid)
        lock.unlock()
    }

    func remove(_ pid: Int32) {
        lock.lock()
        pids.remove(pid)
        lock.unlock()
    }

    func killAll() {
        lock.lock()
        let all = pids
        pids.removeAll()
        lock.unlock()
        for pid in all { kill(pid, SIGKILL) }
    }
}
