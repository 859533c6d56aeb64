import Foundation

/// Starting child processes (daemons, agents, redis-server) so that none outlives the test run.
///
/// Three layers, because no one of them covers every way a test process ends:
/// - `stop(_:)` sends SIGTERM and, after a timeout, SIGKILL: a hung child never hangs the caller.
/// - Every child is registered and SIGKILLed by an `atexit` handler: a normal exit, even with
///   failed tests, leaves none behind.
/// - On Linux every child gets `PR_SET_PDEATHSIG = SIGKILL`: when the test process dies without
///   running `atexit` (a trap on a force unwrap, a failed precondition, SIGKILL), the kernel kills
///   the children. posix_spawn cannot call prctl in the child, so the child is started through
///   util-linux `setpriv --pdeathsig KILL --` (which sets it and execs the real program, keeping the
///   pid) when `/usr/bin/setpriv` exists. The death signal fires when the *thread* that spawned the
///   child exits, not only the process, so every child is spawned from one thread that lives as
///   long as the process (`Spawner`); spawning from a pool or test thread would kill the child when
///   that thread is retired.
///
/// The spawner also starts children with an empty signal mask: a child inherits its parent
/// thread's mask, and the threads Swift Testing and Dispatch run code on block most signals,
/// SIGTERM included, so a child started from one of them would never see a SIGTERM.
public enum ChildProcess {
    /// util-linux setpriv, when present (Linux only).
    static let setpriv: String? = {
        #if os(Linux)
        for path in ["/usr/bin/setpriv", "/bin/setpriv"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        #endif
        return nil
    }()

    /// The argv that starts `executable` with the parent-death signal set, where that is possible.
    static func wrapped(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard let setpriv else { return (executable, arguments) }
        return (setpriv, ["--pdeathsig", "KILL", "--", executable] + arguments)
    }

    /// The environment a program under test (the `coordinatord` binary) gets: PATH, HOME and
    /// LANG from the test's own, where set, then `extra`. Never the whole environment: an ambient
    /// `COORD_*` or `REDIS_URL` would otherwise change every daemon a test starts.
    public static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        let inherited = ProcessInfo.processInfo.environment
        var env: [String: String] = [:]
        for name in ["PATH", "HOME", "LANG"] { env[name] = inherited[name] }
        env.merge(extra) { $1 }
        return env
    }

    /// Starts a Foundation `Process` from the spawner thread, with the parent-death signal and an
    /// empty signal mask; it is registered for clean-up at exit. Its pid is the program's own
    /// (setpriv execs it).
    public static func run(_ process: Process) throws {
        if let executable = process.executableURL?.path {
            let (path, arguments) = wrapped(executable, process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        }
        try Spawner.shared.sync {
            var empty = sigset_t()
            var previous = sigset_t()
            sigemptyset(&empty)
            pthread_sigmask(SIG_SETMASK, &empty, &previous)
            defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
            try process.run()
        }
        ChildRegistry.shared.insert(process.processIdentifier)
    }

    /// Starts `process` as `run(_:)` does, with a deadline: it is SIGKILLed if still running
    /// `timeout` seconds later, so a caller reading its output to the end or waiting for its
    /// exit is never held longer (a regression that keeps a command running fails its test
    /// instead of hanging the run). Call `wait()` on the result once its output is read.
    public static func run(_ process: Process, deadline timeout: Double) throws -> ExitDeadline {
        let command = [process.executableURL?.lastPathComponent ?? "?"] + (process.arguments ?? [])
        try run(process)
        return deadline(process, timeout: timeout, command: command)
    }

    /// The same deadline for a child already started by `run(_:)`, counted from now.
    public static func deadline(_ process: Process, timeout: Double, command: [String]) -> ExitDeadline {
        ExitDeadline(process, command: command, timeout: timeout)
    }

    /// SIGTERM (or `signal`), then SIGKILL if the child is still running after `timeout` seconds;
    /// returns once it has exited. Returns true when it ended within the timeout.
    @discardableResult
    public static func stop(_ process: Process, signal: Int32 = SIGTERM, timeout: Double = 10) -> Bool {
        let pid = process.processIdentifier
        defer { ChildRegistry.shared.remove(pid) }
        guard process.isRunning else {
            process.waitUntilExit()
            return true
        }
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let inTime = !process.isRunning
        if !inTime { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return inTime
    }

    /// Waits up to `timeout` seconds for the child to exit by itself; false if it is still running.
    public static func waitForExit(_ process: Process, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { return false }
        process.waitUntilExit()
        ChildRegistry.shared.remove(process.processIdentifier)
        return true
    }
}

/// One thread, alive for the whole process, from which every child is spawned (see
/// `ChildProcess`: the parent-death signal is bound to the spawning thread).
final class Spawner: @unchecked Sendable {
    static let shared = Spawner()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in loop() }
        thread.name = "child-spawner"
        thread.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Runs `body` on the spawner thread and returns its result.
    func sync<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>?
        let job = { result = Result { try body() }; done.signal() }
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
        done.wait()
        return try result!.get()
    }
}

/// The pids of running children, SIGKILLed at exit.
final class ChildRegistry: @unchecked Sendable {
    static let shared: ChildRegistry = {
        let registry = ChildRegistry()
        atexit { ChildRegistry.shared.killAll() }
        return registry
    }()

    private let lock = NSLock()
    private var pids: Set<Int32> = []

    func insert(_ pid: Int32) { lock.withLock { _ = pids.insert(pid) } }
    func remove(_ pid: Int32) { lock.withLock { _ = pids.remove(pid) } }

    func killAll() {
        let all = lock.withLock {
            defer { pids.removeAll() }
            return pids
        }
        for pid in all { kill(pid, SIGKILL) }
    }
}

/// The deadline of one child started with `ChildProcess.run(_:deadline:)`.
public final class ExitDeadline: @unchecked Sendable {
    private let process: Process
    private let command: [String]
    private let timeout: Double
    private let lock = NSLock()
    private var ended = false
    private var fired = false

    init(_ process: Process, command: [String], timeout: Double) {
        self.process = process
        self.command = command
        self.timeout = timeout
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in
            lock.lock()
            defer { lock.unlock() }
            guard !ended else { return }
            fired = true
            kill(pid, SIGKILL)
        }
    }

    /// Waits for the exit (at most until the deadline); throws when the deadline killed it.
    public func wait() throws(ChildTimeout) {
        process.waitUntilExit()
        ChildRegistry.shared.remove(process.processIdentifier)
        lock.lock()
        ended = true
        let killed = fired
        lock.unlock()
        if killed { throw ChildTimeout(command: command, timeout: timeout) }
    }
}

/// A child killed at its deadline.
public struct ChildTimeout: Error, CustomStringConvertible {
    public let command: [String]
    public let timeout: Double
    public var description: String { "\(command.joined(separator: " ")) did not end within \(timeout) s and was killed" }
}

/// Products built next to the test bundle (`coordinatord`), for tests that run them.
public enum BuiltProduct {
    public static func url(_ name: String) -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return dir.appendingPathComponent(name)
    }
}
