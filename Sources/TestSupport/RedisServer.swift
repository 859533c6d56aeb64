import Foundation
import RedisClient

/// A real redis-server for tests and benchmarks: its own port on 127.0.0.1 (reserved for as long
/// as the server object lives, restarts included: see `PortReservation`), its own temporary
/// directory, AOF with fsync always (so `restart()` keeps the data), no RDB.
/// Every started server is also killed by an `atexit` handler and, on Linux, by the kernel when
/// the test process dies (see `ChildProcess`), so an aborted run leaves none behind.
public final class RedisServer: @unchecked Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: Int
    /// Holds `port` for this server alone, from before its first start to its end.
    private let reservation: PortReservation
    public let password: String?
    /// The unix socket path when started with `unixSocket: true`.
    public let unixSocketPath: String?
    /// The server's working directory (AOF files, log).
    public let directory: URL
    private let arguments: [String]
    private let lock = NSLock()
    private var process: SpawnedProcess?
    /// Set when the last `launch()` failed because the server process ended.
    private var exitedDuringStart = false

    /// Starts redis-server (from PATH, else /usr/bin/redis-server) and waits until it answers PING.
    public static func start(password: String? = nil, arguments: [String] = [], unixSocket: Bool = false) throws -> RedisServer {
        var lastError: Error?
        for _ in 0..<5 {
            // One directory per attempt: a failed attempt's deinit removes its own.
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("redis-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let server = RedisServer(
                reservation: try PortReservation(forListener: true), password: password, arguments: arguments, directory: directory,
                unixSocketPath: unixSocket ? directory.appendingPathComponent("redis.sock").path : nil)
            do {
                try server.launch()
                return server
            } catch {
                lastError = error
                // The server ended before answering (a process that binds the reserved port with
                // SO_REUSEADDR of its own can still take it first): retry on a new port. A
                // server that runs but never answers PING is not retried.
                if !server.exitedDuringStart { break }
            }
        }
        throw lastError ?? StartError(description: "redis-server did not start")
    }

    private init(reservation: PortReservation, password: String?, arguments: [String], directory: URL, unixSocketPath: String?) {
        self.reservation = reservation
        self.port = reservation.port
        self.password = password
        self.arguments = arguments
        self.directory = directory
        self.unixSocketPath = unixSocketPath
    }

    deinit {
        stop()
        reservation.release()
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

    /// Stops and starts again on the same port and directory; the data is kept. `adding`
    /// arguments apply to this start only (after the server's own). Returns once the server
    /// answers PING; with `loaded: false`, already when it answers LOADING (the data is still
    /// being read: every command but a few is refused meanwhile).
    public func restart(adding extra: [String] = [], loaded: Bool = true) throws {
        stop()
        var lastError: Error?
        for _ in 0..<20 {
            do {
                try launch(adding: extra, loaded: loaded)
                return
            } catch {
                lastError = error
                if !logTail().contains("Address already in use") { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        throw lastError!
    }

    /// Whether the server is still loading its data (`INFO persistence`, which it answers
    /// while loading).
    public func isLoading() throws -> Bool {
        let connection = try client()
        defer { connection.close() }
        let info = try connection.send("INFO", "persistence").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("loading:") }) else {
            throw StartError(description: "INFO persistence has no loading field: \(info)")
        }
        return line.hasSuffix(":1")
    }

    /// The last lines of the server's log.
    public func logTail(lines: Int = 20) -> String {
        let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func launch(adding extra: [String] = [], loaded: Bool = true) throws {
        var args = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--dir", directory.path, "--daemonize", "no",
            "--logfile", directory.appendingPathComponent("redis.log").path,
        ]
        if let password { args += ["--requirepass", password] }
        if let unixSocketPath { args += ["--unixsocket", unixSocketPath, "--unixsocketperm", "700"] }
        args += arguments + extra
        // posix_spawn rather than Foundation.Process: Process starts the child with the signal
        // mask of the calling thread, and Swift's pool threads block SIGTERM, so the server
        // would never see `stop()`'s SIGTERM.
        let process = try SpawnedProcess.spawn(executable: Self.executable().path, arguments: args)
        ChildRegistry.shared.insert(process.pid)
        lock.lock()
        self.process = process
        lock.unlock()

        let deadline = Date(timeIntervalSinceNow: 5)
        while Date() < deadline {
            if !process.isRunning { break }
            if let connection = try? RedisConnection(configuration: configuration) {
                defer { connection.close() }
                do {
                    _ = try connection.send("PING")
                    return
                } catch {
                    // NOAUTH or NOPERM (an ACL file that turns the default user off): it answers.
                    // LOADING only when asked: a restarted server is not ready until its data
                    // is loaded.
                    if case .server(let message) = error,
                       message.hasPrefix("NOAUTH") || message.hasPrefix("NOPERM") || (!loaded && message.hasPrefix("LOADING")) { return }
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let running = process.isRunning
        exitedDuringStart = !running
        terminate(signal: SIGKILL)
        let what = running ? "did not answer PING within 5 s" : "exited (\(process.exitDescription))"
        throw StartError(description: "redis-server on port \(port) \(what); log:\n\(logTail())")
    }

    private func terminate(signal: Int32) {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        guard let process else { return }
        if process.isRunning { Foundation.kill(process.pid, signal) }
        // A server that ignores SIGTERM for 10 s gets SIGKILL: stop() never hangs.
        let deadline = Date(timeIntervalSinceNow: 10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        if process.isRunning { Foundation.kill(process.pid, SIGKILL) }
        process.waitUntilExit()
        ChildRegistry.shared.remove(process.pid)
    }

    private static func executable() -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        return URL(fileURLWithPath: "/usr/bin/redis-server")
    }
}

/// A child process started with posix_spawn: empty signal mask and default handlers (whatever
/// the spawning thread blocks or the test process ignores), stdio on /dev/null and no other
/// descriptor of the test process, from the spawner thread with the parent-death signal where possible (see `ChildProcess`).
final class SpawnedProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exited = false
    private var status: Int32?

    private init(pid: pid_t) {
        self.pid = pid
    }

    static func spawn(executable: String, arguments: [String]) throws -> SpawnedProcess {
        let (path, argv) = ChildProcess.wrapped(executable, arguments)
        return try Spawner.shared.sync { try spawnHere(executable: path, arguments: argv) }
    }

    private static func spawnHere(executable: String, arguments: [String]) throws -> SpawnedProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Nothing else of the test process, as Foundation's Process does: a redis-server that
        // inherited a daemon's Redis socket kept that connection open on its server after the
        // daemon closed it, and one that inherited a PortReservation held its port.
        closeInheritedDescriptors(&actions)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { argvBuffer in
            posix_spawn(&pid, executable, &actions, &attributes, argvBuffer.baseAddress!, environ)
        }
        guard result == 0 else {
            throw RedisServer.StartError(description: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        return SpawnedProcess(pid: pid)
    }

    /// Reaps the child (without blocking) when it has exited.
    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exited { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return true }
        if result == pid {
            exited = true
            self.status = status
        } else if result < 0 && errno == ECHILD {
            exited = true
        }
        return !exited
    }

    /// How the child ended ("exit status 1", "signal 9"), for error messages.
    var exitDescription: String {
        lock.lock()
        defer { lock.unlock() }
        guard exited else { return "running" }
        guard let status else { return "reaped elsewhere" }
        let signal = status & 0x7f
        return signal == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(signal)"
    }

    func waitUntilExit() {
        lock.lock()
        let done = exited
        lock.unlock()
        if done { return }
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
        lock.lock()
        exited = true
        if result == pid { self.status = status }
        lock.unlock()
    }
}

/// Adds to `actions` the closing of every descriptor from 3 up: glibc's
/// `posix_spawn_file_actions_addclosefrom_np` (2.34), looked up at run time since Swift's Glibc
/// module does not declare it; without it, a close of each descriptor open now.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    #if os(Linux)
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np"),
       unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3) == 0 {
        return
    }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap({ Int32($0) }) where fd > 2 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
    #endif
}
