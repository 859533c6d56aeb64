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

        init(process: Process) {
            self.process = process
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            out.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.append(handle.availableData, error: false) }
            err.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.append(handle.availableData, error: true) }
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
            // Let the readers drain what the child wrote last.
            for pipe in [process.standardOutput, process.standardError] {
                if let pipe = pipe as? Pipe {
                    pipe.fileHandleForReading.readabilityHandler = nil
                    let rest = pipe.fileHandleForReading.readDataToEndOfFile()
                    append(rest, error: pipe === process.standardError as? Pipe)
                }
            }
            return Result(status: process.terminationStatus, out: output, err: errors)
        }

        func stop() {
            ChildProcess.stop(process)
        }
    }
}
