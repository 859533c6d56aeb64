import Foundation
import Logging
import RedisClient

/// One coordinatord process: request intake loops, the approval loop, housekeeping and the
/// plan executor, each on a thread of its own with its own Redis connection.
public final class Daemon: @unchecked Sendable {
    let context: DaemonContext
    private var workers: [QueueWorker] = []
    private var maintenance: Maintenance?
    private var executor: PlanExecutor?
    private let metricsEndpoint: MetricsEndpoint?

    public var workerID: String { context.workerID }
    /// The port `/metrics` is served on; nil with `--metrics-port 0`.
    public var metricsPort: Int? { metricsEndpoint?.port }

    public init(configuration: DaemonConfiguration, logger: Logger) throws {
        self.context = try DaemonContext(configuration: configuration, logger: logger)
        self.metricsEndpoint = try MetricsEndpoint.open(context)
    }

    /// Starts every loop; each connects (and reconnects) by itself, so a Redis that is not
    /// up yet delays work without failing start-up.
    public func start() {
        RedisProcess.ignoreSIGPIPE()
        context.logger.info("coordinatord \(DaemonVersion.current) starting",
                            metadata: ["worker": "\(context.workerID)", "config": "\(context.configuration.summary)"])
        let requests = RequestHandler(context: context)
        for index in 0..<max(1, context.configuration.workers) {
            workers.append(QueueWorker(context: context, handler: requests, index: index))
        }
        workers.append(QueueWorker(context: context, handler: ApprovalHandler(context: context), index: 0))
        let executor = PlanExecutor(context: context)
        self.executor = executor
        let maintenance = Maintenance(context: context)
        self.maintenance = maintenance
        maintenance.start()
        executor.start()
        for worker in workers { worker.start() }
        metricsEndpoint?.start()
    }

    /// Stops taking new messages, finishes what is in hand (plans in progress are left to
    /// their leases and taken over), and returns when every loop has ended.
    public func stop() {
        context.logger.info("stopping: no new messages; finishing what is in flight")
        // Together: each loop may be in a blocking pop of up to a second.
        for worker in workers { worker.beginStopping() }
        for worker in workers { worker.waitUntilStopped() }
        executor?.stop()
        maintenance?.stop()
        metricsEndpoint?.stop()
        context.logger.info("stopped", metadata: ["processed": "\(context.counters.snapshot.processed)"])
    }

    /// Runs until SIGTERM or SIGINT, then stops gracefully.
    public func runUntilSignalled() {
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        start()
        stop.wait()
        self.stop()
        sources.forEach { $0.cancel() }
    }
}
