import Foundation
import RedisClient

/// What every loop of the daemon (intake, executor, housekeeping) runs on: a thread of its own
/// (blocking Redis calls never touch Swift's cooperative pool), a Redis connection opened on
/// first use and kept by that thread, and a stop that can be asked for and waited on
/// separately, so that several loops wind down together.
final class LoopThread: @unchecked Sendable {
    private let name: String
    private let context: DaemonContext
    private let stopping = Flag()
    private let finished = DispatchSemaphore(value: 0)
    // Touched only by the loop's own thread.
    private var connection: RedisConnection?

    init(name: String, context: DaemonContext) {
        self.name = name
        self.context = context
    }

    /// Runs `body` on a new thread named `coordinatord.<name>`.
    func start(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            body()
            finished.signal()
        }
        thread.name = "coordinatord.\(name)"
        thread.start()
    }

    var isStopping: Bool { stopping.isSet }

    func beginStopping() {
        stopping.set()
    }

    func waitUntilStopped() {
        finished.wait()
        finished.signal()
    }

    func stop() {
        beginStopping()
        waitUntilStopped()
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
