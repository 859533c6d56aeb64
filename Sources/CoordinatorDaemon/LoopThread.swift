import Foundation
import RedisClient
import ServiceLifecycle

/// What every loop of the daemon (intake, executor, housekeeping, metrics) runs on: a thread of
/// its own, so blocking Redis calls never touch Swift's cooperative pool, and a Redis
/// connection opened on first use and kept by that thread. The service owning the loop awaits
/// it with `run`; graceful shutdown or cancellation of that service sets `isStopping`, which
/// the loop checks between batches.
final class LoopThread: @unchecked Sendable {
    private let name: String
    private let context: DaemonContext
    private let stopping = Flag()
    // Touched only by the loop's own thread.
    private var connection: RedisConnection?

    init(name: String, context: DaemonContext) {
        self.name = name
        self.context = context
    }

    /// Runs `body` on a new thread named `coordinatord.<name>` and returns (or throws) when it
    /// ends. Graceful shutdown or cancellation of the calling task asks it to stop.
    func run(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (ended: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try body()
                        ended.resume()
                    } catch {
                        ended.resume(throwing: error)
                    }
                }
                thread.name = "coordinatord.\(name)"
                thread.start()
            }
        } onCancelOrGracefulShutdown: { [stopping] in
            stopping.set()
        }
    }

    var isStopping: Bool { stopping.isSet }

    /// Whether the daemon has announced itself (`DaemonContext.announced`: its first heartbeat
    /// is written); until then it waits 10 ms and returns false, and the loop takes nothing.
    func announced() -> Bool {
        if context.announced.isSet { return true }
        Thread.sleep(forTimeInterval: 0.01)
        return false
    }

    /// The loop's connection, opened on first use (it reconnects by itself afterwards).
    func currentConnection() throws(RedisError) -> RedisConnection {
        if let connection { return connection }
        let connection = try context.connect()
        self.connection = connection
        return connection
    }

    /// The connection if one was opened: for the loop's last words before it ends.
    var openConnection: RedisConnection? { connection }
}
