import Foundation
import TestSupport

/// Runs the built `coordinatord` binary as a person would, capturing what it prints.
struct CLI {
    struct Result: CustomStringConvertible {
        var status: Int32
        var out: String
        var err: String
        var lines: [String] { out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
        var description: String { "exit \(status)\n--- stdout\n\(out)--- stderr\n\(err)" }

        /// Each stdout line as a JSON object.
        func jsonLines() throws -> [[String: Any]] {
            try lines.map { try Harness.object(Array($0.utf8)) }
        }
    }

    let redisURL: String

    /// Runs `coordinatord <arguments>` to its end (killed after `timeout`).
    func run(_ arguments: [String], timeout: Double = 30, environment extra: [String: String] = [:]) throws -> Result {
        let running = try start(arguments, environment: extra)
        guard ChildProcess.waitForExit(running.process, timeout: timeout) else {
            ChildProcess.stop(running.process)
            throw HarnessError.timeout("coordinatord \(arguments.joined(separator: " ")) ran over \(timeout) s:\n\(running.output)")
        }
        return running.finish()
    }

    /// Starts `coordinatord <arguments>` and returns at once (for `events --follow`).
    func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Running {
        let process = Process()
        process.executableURL = Harness.binary
        process.arguments = arguments
        process.environment = ChildProcess.environment(["REDIS_URL": redisURL].merging(extra) { $1 })
        let running = Running(process: process)
        try ChildProcess.run(process)
        return running
    }

    /// A child whose output is collected as it comes.
    final class Running: @unchecked Sendable {
        let process: Process
        private let lock = NSLock()
        private var stdout = Data()
        private var stderr = Data()

        /// The readers of stdout and stderr, done at end of file.
        private let readers = DispatchGroup()

        init(process: Process) {
            self.process = process
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            // A thread per pipe reads it to its end, so that `finish` has every byte in order
            // (readability handlers, cleared at exit, could still be appending a chunk read
            // before; seen losing lines of `dead` under load).
            for (pipe, error) in [(out, false), (err, true)] {
                readers.enter()
                Thread.detachNewThread { [self] in
                    defer { readers.leave() }
                    let handle = pipe.fileHandleForReading
                    while true {
                        let data = handle.availableData
                        if data.isEmpty { return }
                        append(data, error: error)
                    }
                }
            }
        }

        private func append(_ data: Data, error: Bool) {
            lock.lock()
            if error { stderr.append(data) } else { stdout.append(data) }
            lock.unlock()
        }

        var output: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: stdout, as: UTF8.self)
        }

        var errors: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: stderr, as: UTF8.self)
        }

        func finish() -> Result {
            // The child exited: its pipes reach end of file once what it wrote last is read.
            readers.wait()
            return Result(status: process.terminationStatus, out: output, err: errors)
        }

        func stop() {
            ChildProcess.stop(process)
        }
    }
}
