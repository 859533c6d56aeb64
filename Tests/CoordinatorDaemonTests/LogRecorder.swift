import Foundation
import Logging

/// The log of a daemon run in this process, kept for the test: a line the daemon writes after
/// something happened (a commit Redis refused, say) is a marker to wait for, where a sleep would
/// only hope that it happened by then.
final class LogRecorder: @unchecked Sendable {
    struct Line {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lock = NSLock()
    private var recorded: [Line] = []

    /// A logger that records every line at `level` and above here.
    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "coordinatord.test") { _ in Handler(recorder: self, logLevel: level) }
        logger.logLevel = level
        return logger
    }

    var lines: [Line] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    fileprivate func append(_ line: Line) {
        lock.lock()
        recorded.append(line)
        lock.unlock()
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level
        var metadata: Logger.Metadata = [:]

        init(recorder: LogRecorder, logLevel: Logger.Level) {
            self.recorder = recorder
            self.logLevel = logLevel
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            recorder.append(Line(level: event.level, message: event.message.description,
                                 metadata: all.mapValues(\.description)))
        }
    }
}
