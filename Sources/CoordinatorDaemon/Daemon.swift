import Foundation
import Logging
import RedisClient
import ServiceLifecycle
import UnixSignals

/// One coordinatord process: every loop (metrics, housekeeping, the plan executor, request and
/// approval intake) a `Service` in one `ServiceGroup`, each loop on a thread of its own with its
/// own Redis connection. They start in that order and stop in reverse: intake first, so nothing
/// new is taken while the rest finish or hand back what they hold; a part that fails stops
/// the whole daemon.
public final class Daemon: @unchecked Sendable {
    let context: DaemonContext
    private let metricsEndpoint: MetricsEndpoint?
    /// Further services, for tests only (never reachable from flags or the environment).
    private let extraServices: [DaemonService]
    // The group started by `start()`, and its task; guarded by `lock`.
    private let lock = NSLock()
    private var started: (group: ServiceGroup, task: Task<Void, any Error>)?
    /// Where `start()`'s group runs: a daemon started in-process keeps running and stopping
    /// even while its host blocks every thread of Swift's cooperative pool (a test waiting
    /// synchronously in `stop()`, on a 2-core machine where the pool has two threads).
    private let executor = DedicatedExecutor(label: "coordinatord.lifecycle")

    public var workerID: String { context.workerID }
    /// The port `/metrics` is served on; nil with `--metrics-port 0`.
    public var metricsPort: Int? { metricsEndpoint?.port }

    public convenience init(configuration: DaemonConfiguration, logger: Logger) throws {
        try self.init(configuration: configuration, logger: logger, extraServices: [])
    }

    init(configuration: DaemonConfiguration, logger: Logger, extraServices: [DaemonService]) throws {
        self.context = try DaemonContext(configuration: configuration, logger: logger)
        self.metricsEndpoint = try MetricsEndpoint.open(context)
        self.extraServices = extraServices
    }

    /// One partition's loops on a Redis Cluster (`PartitionRunner`): the services below on the
    /// partition's context, with `extraServices` (its outbox).
    init(partition context: DaemonContext, extraServices: [DaemonService]) {
        self.context = context
        self.metricsEndpoint = nil
        self.extraServices = extraServices
    }

    /// Runs every loop until SIGTERM or SIGINT, then stops gracefully. Throws (after stopping
    /// the others) when one of them fails.
    public func run() async throws {
        try await run(signals: [.sigterm, .sigint])
    }

    /// Runs every loop until one of `signals` (or the end of the calling task).
    func run(signals: [UnixSignal]) async throws {
        try await serve(group(signals: signals))
    }

    /// Starts every loop in the background; each connects (and reconnects) by itself, so a
    /// Redis that is not up yet delays work without failing start-up.
    public func start() {
        let group = group(signals: [])
        let task = Task(executorPreference: executor) { try await self.serve(group) }
        lock.withLock { started = (group, task) }
    }

    /// Stops what `start()` started: no new messages, what is in hand finished (plans in
    /// progress are left to their leases and taken over). Returns when every loop has ended.
    public func stop() {
        guard let (group, task) = lock.withLock({ () -> (ServiceGroup, Task<Void, any Error>)? in
            defer { started = nil }
            return started
        }) else { return }
        let stopped = DispatchSemaphore(value: 0)
        Task(executorPreference: executor) {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            stopped.signal()
        }
        stopped.wait()
    }

    private func serve(_ group: ServiceGroup) async throws {
        RedisProcess.ignoreSIGPIPE()
        context.logger.info("coordinatord \(DaemonVersion.current) starting",
                            metadata: ["worker": "\(context.workerID)", "config": "\(context.configuration.summary)"])
        defer { context.logger.info("stopped", metadata: ["processed": "\(context.counters.snapshot.processed)"]) }
        try await group.run()
    }

    private func group(signals: [UnixSignal]) -> ServiceGroup {
        ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services().map(\.configuration), gracefulShutdownSignals: signals, logger: context.logger))
    }

    /// The daemon's services in start order (they stop in reverse).
    private func services() -> [DaemonService] {
        let context = self.context
        let logger = context.logger
        var services: [DaemonService] = []
        if let metricsEndpoint {
            services.append(DaemonService("metrics", logger: logger) { try await metricsEndpoint.run() })
        }
        if context.partition == nil, context.configuration.isCluster {
            // On a cluster the daemon itself only moves messages in and shares the partitions;
            // each partition it holds runs the services below (PROTOCOL.md section 11).
            return services + ClusterServices.services(context) + extraServices
        }
        let maintenance = Maintenance(context: context)
        services.append(DaemonService("housekeeping", logger: logger) { try await maintenance.run() })
        let lanes = max(1, context.configuration.planWorkers)
        let executors = (0..<lanes).map { PlanExecutor(context: context, lane: $0, lanes: lanes) }
        // One service for the lanes, as for the intake loops below: they stop together.
        services.append(DaemonService("executor", logger: logger) { [executors] in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for executor in executors { group.addTask { try await executor.run() } }
                try await group.waitForAll()
            }
        })
        let requests = RequestHandler(context: context)
        var workers = (0..<max(1, context.configuration.workers)).map { QueueWorker(context: context, handler: requests, index: $0) }
        workers.append(QueueWorker(context: context, handler: ApprovalHandler(context: context), index: 0))
        // One service for every intake loop: they stop together (each may be in a blocking pop
        // of up to a second), and one that fails stops the rest.
        services.append(DaemonService("intake", logger: logger) { [workers] in
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in workers { group.addTask { try await worker.run() } }
                    try await group.waitForAll()
                }
            } onGracefulShutdown: {
                logger.info("stopping: no new messages; finishing what is in flight")
            }
        })
        return services + extraServices
    }
}

/// Runs the jobs of the tasks that prefer it on a dispatch queue of its own, off Swift's
/// cooperative pool. Only the lifecycle's glue runs there (every blocking loop has a thread of
/// its own), so one serial queue is enough.
final class DedicatedExecutor: TaskExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
