import Foundation
import Logging
import RedisClient

/// Shares a cluster's partitions between the daemons (PROTOCOL.md section 11), on a thread of
/// its own. Every third of `--heartbeat-ttl` it registers this daemon in `coord:daemons`
/// (by deadline), renews the leases it holds (`coord:{p<k>}:owner`, a script that renews only
/// its holder's), takes free ones (`SET NX PX`) up to its share (the partitions over the live
/// daemons, rounded up) and gives up those over its share. A partition it holds runs as a
/// `PartitionRunner` on the master of the partition's slot, moved when that master changes
/// (a failover, a resharding). A daemon that dies loses its leases within the lease time, and
/// the others take its partitions, their in-flight messages and outboxes over.
final class PartitionLeases: @unchecked Sendable {
    private let context: DaemonContext
    private let loop: LoopThread
    private let partitions: Partitions
    private let extraServices: @Sendable (DaemonContext) -> [DaemonService]
    // Touched only by the loop's thread.
    private var leased = Set<Int>()
    private var runners: [Int: PartitionRunner] = [:]
    private var stopping: [Int: (done: Flag, endpoint: RedisConfiguration.Endpoint)] = [:]

    init(context: DaemonContext, extraServices: @escaping @Sendable (DaemonContext) -> [DaemonService] = { _ in [] }) {
        self.context = context
        self.partitions = Partitions(count: context.configuration.partitions)
        self.extraServices = extraServices
        self.loop = LoopThread(name: "partitions", context: context)
    }

    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private var leaseMs: Int { Int(max(1, context.configuration.heartbeatTTL) * 1000) }

    private func runLoop() {
        // A lease call to a master that died fails fast (the other masters' leases must not lapse
        // while it waits): it is retried in the next round, after the failover.
        var options = RedisClusterClient.Options()
        options.retryTimeout = 0.2
        let client = RedisClusterClient(configuration: context.redis, options: options)
        var backoff = Backoff(first: 0.1, max: 2)
        var lastRefresh = Date.distantPast
        var lastRound = Date.distantPast
        while !loop.isStopping {
            do {
                if Date().timeIntervalSince(lastRefresh) >= 1 {
                    try client.refreshTopology()
                    lastRefresh = Date()
                }
                if Date().timeIntervalSince(lastRound) * 1000 >= Double(leaseMs) / 3 {
                    try round(client)
                    lastRound = Date()
                }
                try place(client)
                backoff.reset()
                Thread.sleep(forTimeInterval: 0.1)
            } catch {
                context.metrics.redisError()
                context.logger.warning("partitions: cluster unavailable; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
        // Stop every partition, all at once (each may finish a batch or wait out a blocking pop
        // of a second), and those still stopping, then give the leases up.
        for k in Array(runners.keys) { stop(k) }
        for previous in stopping.values {
            while !previous.done.isSet { Thread.sleep(forTimeInterval: 0.01) }
        }
        release(client)
        client.close()
    }

    /// Gives the leases up (and leaves the registry), so that other daemons need not wait for
    /// them to lapse: within `releaseBudget` seconds, skipping a master that does not answer.
    /// What is not given up then lapses within `--heartbeat-ttl`. Bounded because a call to a
    /// cluster that is gone waits out reconnect pauses on every node it knows (up to 2 s each):
    /// 64 leases released one by one held a stopping daemon for over ten minutes.
    private func release(_ client: RedisClusterClient) {
        let deadline = DispatchTime.now() + Self.releaseBudget
        DispatchQueue.global().asyncAfter(deadline: deadline) { client.interrupt() }
        var down = Set<RedisConfiguration.Endpoint>()
        for k in leased.sorted() where DispatchTime.now() < deadline {
            let lease = context.keys.partition(k).partitionLease
            let slot = RedisClusterSlot.of(lease)
            if let master = client.master(forSlot: slot), down.contains(master) { continue }
            _ = try? answered(client, { () throws(RedisClusterError) in
                try client.run(ClusterScripts.releasePartition, keys: [lease], args: [self.context.workerID])
            }, slot: slot, down: &down)
        }
        if DispatchTime.now() < deadline {
            _ = try? client.send("ZREM", context.keys.clusterDaemons, context.workerID)
        }
    }

    /// The most a stop spends giving leases up.
    static let releaseBudget = 2.0

    /// Registers this daemon, renews its leases, and takes or gives up partitions to its share.
    private func round(_ client: RedisClusterClient) throws {
        let keys = context.keys
        let daemons = keys.clusterDaemons
        let time = try client.send(RedisCommand("TIME"), routedBy: daemons).array ?? []
        let now = (Int(time.first?.string ?? "") ?? 0) * 1000 + (Int(time.last?.string ?? "") ?? 0) / 1000
        let registry = try client.pipeline([
            RedisCommand("ZADD", daemons, now + leaseMs, context.workerID),
            RedisCommand("ZREMRANGEBYSCORE", daemons, "-inf", now),
            RedisCommand("ZCARD", daemons),
        ])
        let live = max(1, registry.last?.integer.map(Int.init) ?? 1)
        let share = (partitions.count + live - 1) / live

        // Renew what we hold; a lease lost (we were frozen past it) stops its partition. A master
        // that fails a renewal is not asked again this round (it is likely dead: its replica
        // takes over, and the lease is renewed or taken again there).
        var down = Set<RedisConfiguration.Endpoint>()
        for k in leased.sorted() {
            let slot = RedisClusterSlot.of(keys.partition(k).partitionLease)
            if let master = client.master(forSlot: slot), down.contains(master) { continue }
            guard let reply = try answered(client, { () throws(RedisClusterError) in
                try client.run(ClusterScripts.renewPartition, keys: [keys.partition(k).partitionLease], args: [self.context.workerID, self.leaseMs])
            }, slot: slot, down: &down) else { continue }
            if reply.integer != 1 {
                context.logger.warning("partitions: lease of partition \(k) lost; stopping it")
                leased.remove(k)
                stop(k)
            }
        }
        // Over our share (another daemon joined): give the last ones up, stopped first.
        while leased.count > share, let k = leased.max() {
            leased.remove(k)
            stop(k)
            _ = try client.run(ClusterScripts.releasePartition, keys: [keys.partition(k).partitionLease], args: [context.workerID])
            context.logger.info("partitions: gave partition \(k) up (share \(share) of \(partitions.count), \(live) daemons)")
        }
        // Under it: take free ones, from a place of our own so daemons do not all race for one.
        if leased.count < share {
            let start = Int.random(in: 0..<partitions.count)
            for offset in 0..<partitions.count where leased.count < share {
                let k = (start + offset) % partitions.count
                guard !leased.contains(k) else { continue }
                let slot = RedisClusterSlot.of(keys.partition(k).partitionLease)
                if let master = client.master(forSlot: slot), down.contains(master) { continue }
                let taken = try answered(client, { () throws(RedisClusterError) in
                    try client.send("SET", keys.partition(k).partitionLease, self.context.workerID, "NX", "PX", self.leaseMs)
                }, slot: slot, down: &down)
                if taken?.string == "OK" { leased.insert(k) }
            }
        }
    }

    /// The reply of `call`, or nil when the slot's master did not answer (then marked down for
    /// the rest of the round); other errors are thrown.
    private func answered(_ client: RedisClusterClient, _ call: () throws(RedisClusterError) -> RedisReply, slot: Int,
                          down: inout Set<RedisConfiguration.Endpoint>) throws -> RedisReply? {
        do {
            return try call()
        } catch {
            guard error.isOutage else { throw error }
            if let master = client.master(forSlot: slot) { down.insert(master) }
            return nil
        }
    }

    /// Runs every partition held on the master of its slot: starts those not running (once a
    /// previous run of theirs has stopped) and moves those whose slot changed master.
    private func place(_ client: RedisClusterClient) throws {
        for k in leased.sorted() {
            let slot = RedisClusterSlot.of(context.keys.partition(k).partitionLease)
            guard let owner = client.master(forSlot: slot) else { continue }
            if let runner = runners[k] {
                guard owner != runner.endpoint else { continue }
                context.logger.info("partitions: partition \(k) moves to \(owner)")
                stop(k)
            }
            // Loops still stopping on the same master are waited for (they share the worker id);
            // those on the old master of a moved slot can no longer write there, and are not.
            if let previous = stopping[k] {
                guard previous.done.isSet || previous.endpoint != owner else { continue }
                stopping[k] = nil
            }
            let runner = try PartitionRunner(root: context, index: k, endpoint: owner, extraServices: extraServices)
            runners[k] = runner
            runner.start()
            context.logger.info("partitions: running partition \(k) on \(owner)")
        }
    }

    /// Stops a partition's loops on a thread of their own (they may finish a batch, or wait out
    /// a plan's grace period) while this loop keeps renewing the other leases.
    private func stop(_ k: Int) {
        guard let runner = runners.removeValue(forKey: k) else { return }
        let done = Flag()
        stopping[k] = (done, runner.endpoint)
        Thread.detachNewThread {
            runner.stop()
            done.set()
        }
    }
}

/// One partition's loops (PROTOCOL.md section 11): the single-Redis daemon's services
/// (housekeeping, executor, request and approval intake) on the partition's context, plus
/// the outbox, all on connections to the master of the partition's slot.
final class PartitionRunner: @unchecked Sendable {
    let index: Int
    let endpoint: RedisConfiguration.Endpoint
    private let daemon: Daemon

    init(root: DaemonContext, index: Int, endpoint: RedisConfiguration.Endpoint,
         extraServices: (DaemonContext) -> [DaemonService]) throws {
        self.index = index
        self.endpoint = endpoint
        var pinned = root.redis
        pinned.endpoint = endpoint
        var configuration = root.configuration
        configuration.workers = 1
        // One executor lane per partition: a daemon holding many partitions has as many lanes.
        configuration.planWorkers = 1
        // The daemon's one endpoint serves the partitions' metrics: they record into its set.
        configuration.metricsPort = 0
        var logger = root.logger
        logger[metadataKey: "partition"] = "\(index)"
        let role = PartitionRole(index: index, keys: root.keys.partition(index), redis: pinned,
                                 workerID: "\(root.workerID)-p\(index)")
        let context = try DaemonContext(configuration: configuration, logger: logger, partition: role, metrics: root.metrics)
        let outbox = OutboxMover(context: context, cluster: root.redis)
        var services = [DaemonService("outbox", logger: logger) { try await outbox.run() }]
        if configuration.executor == .agents {
            // Steps for agents' lists leave through an outbox of their own (`StepOutbox`).
            let steps = OutboxMover(context: context, cluster: root.redis, kind: .steps)
            services.append(DaemonService("step-outbox", logger: logger) { try await steps.run() })
        }
        daemon = Daemon(partition: context, extraServices: services + extraServices(context))
    }

    func start() { daemon.start() }
    func stop() { daemon.stop() }
}
