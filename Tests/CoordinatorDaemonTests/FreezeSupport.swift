import Foundation
import Testing

/// Freezing a daemon process (SIGSTOP) and thawing it (SIGCONT): a daemon that is alive but
/// does nothing, as a long GC-like pause, a stopped container or a swapped-out host leaves it.
enum Freeze {
    /// SIGSTOP, and returns once the process is really stopped (kill returns before the signal
    /// lands) and Redis has run whatever it had already sent.
    static func stop(_ process: Process) {
        kill(process.processIdentifier, SIGSTOP)
        let stat = "/proc/\(process.processIdentifier)/stat"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: stat, encoding: .utf8)) ?? ""
            // The state follows the parenthesised command name: "pid (comm) T ...".
            if let close = text.lastIndex(of: ")"),
               text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T") { break }
            Thread.sleep(forTimeInterval: 0.001)
        }
        Thread.sleep(forTimeInterval: 0.05)
    }

    static func thaw(_ process: Process) {
        kill(process.processIdentifier, SIGCONT)
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
