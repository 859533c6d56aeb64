import Foundation

/// A blocking client for a Redis Cluster: routes each command, or each pipeline of one slot, to
/// the master serving its slot, over one lazily opened `RedisConnection` per node, and follows
/// the cluster as it changes (see docs/CLUSTER.md).
///
/// **Routing.** By the command's first key (`RedisClusterSlot.firstKey(of:)`), by an explicit
/// key, or by an explicit slot (for keyless commands that must reach a slot's master, such as
/// `WAIT` after a write).
///
/// **Redirects and retries**, per call:
/// - `MOVED`: the slot → node map is patched, the command is sent to the new owner, and a full
///   topology refresh is done before the next routing decision (at most one per
///   `Options.minimumRefreshInterval`).
/// - `ASK`: `ASKING` then the command on the named node; the map is not patched.
/// - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`: sleep a jittered exponential backoff, re-route, retry.
/// - A connection error: the topology is refreshed (the failed node asked last), sleep, retry.
///   A command the failed connection may already have sent is re-sent only with
///   `Options.resendAfterConnectionLoss` (on by default; see its caveat).
/// - `CROSSSLOT`: thrown at once as `RedisClusterError.crossSlot`, never retried.
/// Redirects are bounded by `Options.maxRedirects`; waits and connection retries by
/// `Options.retryTimeout`. Past them the last error is thrown.
///
/// **Threading.** As `RedisConnection`: one thread at a time (the daemon's own threads, never
/// Swift's cooperative pool); `interrupt()` and `statistics` from any thread.
public final class RedisClusterClient: @unchecked Sendable {
    /// Bounds and pacing of the redirect and retry loop.
    public struct Options: Sendable, Equatable {
        /// Redirects (`MOVED` + `ASK`) followed by one call before it throws `.tooManyRedirects`.
        public var maxRedirects = 16
        /// Seconds one call may spend retrying `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` and connection
        /// errors (a failover with `cluster-node-timeout` 1 s takes 2 to 3 s).
        public var retryTimeout: Double = 10
        /// The first backoff (seconds); it doubles per retry up to `backoffCap`, and each sleep is
        /// drawn uniformly from its upper half (jitter, so clients do not retry in step).
        public var backoffBase: Double = 0.01
        /// The longest single backoff (seconds).
        public var backoffCap: Double = 0.5
        /// Re-send a command whose connection failed after it may have been written. Redis may
        /// have applied it, so with this on a command can be applied twice: right for idempotent
        /// commands and scripts (the daemon's commits are idempotent by message identity), wrong
        /// for a bare `LPUSH`/`INCR` whose repetition matters. Off: such a failure is thrown as
        /// `.redis(.connection)` (a command that surely was not sent is always retried).
        public var resendAfterConnectionLoss = true
        /// The shortest time between two topology refreshes caused by `MOVED` (a resharding sends
        /// one `MOVED` per slot; a refresh per `MOVED` would be a storm of `CLUSTER SHARDS`).
        public var minimumRefreshInterval: Double = 0.1

        /// The defaults.
        public init() {}
    }

    /// What this client met, since it was made (for tests, logs and metrics).
    public struct Statistics: Sendable, Equatable {
        /// `MOVED` replies followed.
        public var moved = 0
        /// `ASK` replies followed.
        public var asked = 0
        /// `TRYAGAIN` replies waited out.
        public var tryAgain = 0
        /// `CLUSTERDOWN` (and `LOADING`) replies waited out.
        public var clusterDown = 0
        /// Connection errors retried.
        public var connectionErrors = 0
        /// Topology refreshes that succeeded.
        public var topologyRefreshes = 0
        /// Topology refreshes that found no node to answer (routing went on with the old map).
        public var topologyRefreshFailures = 0
        /// Blocking commands re-issued by `blocking(_:timeout:slot:)` after `UNBLOCKED` or a
        /// connection error (those re-issued after `MOVED` count in `moved`).
        public var blockingReissues = 0
        /// Time spent in backoff sleeps, seconds.
        public var backoffSeconds = 0.0
    }

    /// The seeds (`clusterSeeds`, else `endpoint`) and the credentials used for every node.
    public let configuration: RedisConfiguration
    /// Bounds and pacing of the retry loop.
    public let options: Options

    /// Guards `active`, `interruptRequested`, `stats`: what other threads touch.
    private let signal = NSCondition()
    private var active: RedisConnection?
    private var interruptRequested = false
    private var stats = Statistics()

    // Owned by the calling thread.
    private var connections: [RedisConfiguration.Endpoint: RedisConnection] = [:]
    private var owners = [RedisConfiguration.Endpoint?](repeating: nil, count: RedisClusterSlot.count)
    private var current = RedisClusterTopology(shards: [])
    private var refreshDue = false
    private var lastRefresh: Date?
    private var lastFailed: RedisConfiguration.Endpoint?

    /// A client; nothing is connected until the first command (which reads the topology first).
    public init(configuration: RedisConfiguration, options: Options = Options()) {
        self.configuration = configuration
        self.options = options
    }

    deinit {
        for connection in connections.values { connection.close() }
    }

    // MARK: Commands

    /// Sends a command to the master of its first key's slot. An error reply is thrown as
    /// `.redis(.server(message))`, `CROSSSLOT` as `.crossSlot`.
    public func send(_ command: RedisCommand) throws(RedisClusterError) -> RedisReply {
        guard let slot = RedisClusterSlot.of(command) else {
            throw .unroutable("\(command.name) names no key: route it with send(_:slot:) or send(_:routedBy:)")
        }
        return try send(command, slot: slot)
    }

    /// `send(RedisCommand(name, args...))`
    public func send(_ name: String, _ args: any RedisArgument...) throws(RedisClusterError) -> RedisReply {
        try send(RedisCommand(name, arguments: args))
    }

    /// Sends a command to the master of `key`'s slot, whatever keys the command names.
    public func send(_ command: RedisCommand, routedBy key: some RedisArgument) throws(RedisClusterError) -> RedisReply {
        try send(command, slot: RedisClusterSlot.of(key.redisBytes))
    }

    /// Sends a command to the master of `slot`.
    public func send(_ command: RedisCommand, slot: Int) throws(RedisClusterError) -> RedisReply {
        let reply = try execute([command], slot: slot)[0]
        if case .error(let message) = reply { throw .redis(.server(message)) }
        return reply
    }

    /// Runs a script with EVALSHA on the master of its first key's slot (a script with no keys
    /// needs `slot`); a node that answers NOSCRIPT gets SCRIPT LOAD and the call again (each
    /// node has its own script cache: a promoted replica, a flushed one).
    public func run(_ script: RedisScript, keys: [any RedisArgument], args: [any RedisArgument], slot: Int? = nil) throws(RedisClusterError) -> RedisReply {
        let command = script.command(keys: keys, args: args)
        guard let slot = slot ?? RedisClusterSlot.of(command) else {
            throw .unroutable("a script called with no keys needs an explicit slot")
        }
        return try send(command, slot: slot)
    }

    /// Sends commands whose keys are all in one slot in one round trip to its master (keyless
    /// commands, `WAIT` say, ride along); replies in order, error replies in place, as
    /// `RedisConnection.pipeline` gives them. Commands redirected or told to wait are retried,
    /// and only they (those already answered are not sent twice), so after a redirect the
    /// commands may have run in a different order: a pipeline is not a transaction (a script is).
    /// Keys in different slots throw `.crossSlot` before anything is sent.
    public func pipeline(_ commands: [RedisCommand], slot explicit: Int? = nil) throws(RedisClusterError) -> [RedisReply] {
        if commands.isEmpty { return [] }
        var slot = explicit
        for command in commands {
            guard let commandSlot = RedisClusterSlot.of(command) else { continue }
            if let slot, slot != commandSlot {
                throw .crossSlot("the pipeline's \(command.name) is in slot \(commandSlot), not \(slot)")
            }
            slot = commandSlot
        }
        guard let slot else { throw .unroutable("a pipeline of keyless commands needs an explicit slot") }
        return try execute(commands, slot: slot)
    }

    /// Sends commands of any slots (each command's keys in one slot) with one pipelined round
    /// trip per master: for reads across partitions (`approvals`, `status`, sweepers). Replies in
    /// order, error replies in place. A command its master redirected, told to wait, or whose
    /// connection failed, is then sent on its own through the redirect loop (so, after a lost
    /// connection, only with `resendAfterConnectionLoss`). A command that names no key throws
    /// `.unroutable` before anything is sent.
    public func pipelinePerMaster(_ commands: [RedisCommand]) throws(RedisClusterError) -> [RedisReply] {
        var slots: [Int] = []
        slots.reserveCapacity(commands.count)
        for command in commands {
            guard let slot = RedisClusterSlot.of(command) else { throw .unroutable("\(command.name) names no key") }
            slots.append(slot)
        }
        var replies = [RedisReply?](repeating: nil, count: commands.count)
        var groups: [(RedisConfiguration.Endpoint, [Int])] = []
        for (index, slot) in slots.enumerated() {
            let owner: RedisConfiguration.Endpoint
            do throws(RedisError) {
                owner = try route(slot)
            } catch .closed where consumeInterrupt() {
                throw .redis(.closed)
            } catch {
                // A slot whose master cannot be found now is left to the redirect loop below.
                continue
            }
            if let group = groups.firstIndex(where: { $0.0 == owner }) {
                groups[group].1.append(index)
            } else {
                groups.append((owner, [index]))
            }
        }
        for (endpoint, indices) in groups {
            var sent = false
            let got: [RedisReply]
            do throws(RedisError) {
                got = try roundTrip(indices.map { commands[$0] }, to: endpoint, sent: &sent)
            } catch {
                if case .closed = error, consumeInterrupt() { throw .redis(.closed) }
                guard case .connection = error, !sent || options.resendAfterConnectionLoss else { throw .redis(error) }
                lastFailed = endpoint
                refreshDue = true
                continue
            }
            for (position, index) in indices.enumerated() {
                if case .error(let message) = got[position] {
                    let code = message.prefix { $0 != " " }
                    if code == "CROSSSLOT" { throw .crossSlot(message) }
                    if Self.retried.contains(String(code)) { continue }
                }
                replies[index] = got[position]
            }
        }
        for index in replies.indices where replies[index] == nil {
            replies[index] = try execute([commands[index]], slot: slots[index])[0]
        }
        return replies.map { $0 ?? .null }
    }

    /// The error codes the redirect loop answers by sending again.
    private static let retried: Set<String> = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING"]

    /// Sends a blocking command with a finite timeout and, until that much time has passed,
    /// re-issues it (with the time left) when it comes back `UNBLOCKED` (its node stopped being a
    /// master) or after a connection error; after `MOVED` (the slot moved while it waited) the
    /// redirect loop re-issues it on the new owner. `make` builds the command for a timeout in
    /// seconds. Returns the reply, or `.null` once the time is up.
    ///
    /// What a re-issue means for the caller: a BLMOVE whose connection broke may have moved its
    /// element already (into the caller's in-flight list, where recovery finds it); an UNBLOCKED
    /// or MOVED one did nothing.
    public func blocking(_ make: (Double) -> RedisCommand, timeout: Double, slot: Int) throws(RedisClusterError) -> RedisReply {
        guard timeout > 0, timeout.isFinite else {
            throw .unroutable("a blocking command in a cluster needs a finite timeout > 0, not \(timeout)")
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        var reissue = false
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return .null }
            if reissue { record { $0.blockingReissues += 1 } }
            reissue = true
            do {
                return try send(make(max(0.01, (left * 1000).rounded(.up) / 1000)), slot: slot)
            } catch .redis(.server(let message)) where message.hasPrefix("UNBLOCKED") {
                refreshDue = true
            } catch .redis(.connection) {
                refreshDue = true
            }
        }
    }

    /// `BLMOVE source destination RIGHT LEFT timeout` through `blocking`: the moved element, or
    /// nil when nothing came within `timeout` seconds (finite). Both keys must share a slot.
    public func blockingMove(from source: String, to destination: String, timeout: Double) throws(RedisClusterError) -> [UInt8]? {
        let reply = try blocking({ RedisCommand("BLMOVE", source, destination, "RIGHT", "LEFT", $0) },
                                 timeout: timeout, slot: RedisClusterSlot.of(source))
        switch reply {
        case .bulk(let bytes): return bytes
        case .null: return nil
        case let other: throw .redis(.protocolError("BLMOVE: unexpected reply \(other)"))
        }
    }

    /// `BRPOP keys... timeout` through `blocking`: the key and the element popped from its tail,
    /// or nil after `timeout` seconds (finite). The keys must share a slot.
    public func blockingPop(_ keys: [String], timeout: Double) throws(RedisClusterError) -> (key: String, value: [UInt8])? {
        guard let first = keys.first else { throw .unroutable("BRPOP needs a key") }
        let reply = try blocking({ RedisCommand("BRPOP", arguments: keys + [$0]) }, timeout: timeout, slot: RedisClusterSlot.of(first))
        if reply.isNull { return nil }
        guard let pair = reply.array, pair.count == 2, let key = pair[0].string, let value = pair[1].bytes else {
            throw .redis(.protocolError("BRPOP: unexpected reply \(reply)"))
        }
        return (key, value)
    }

    // MARK: Topology and state

    /// The topology last read (empty before the first command or `refreshTopology()`).
    public var topology: RedisClusterTopology { current }

    /// The master this client would send `slot`'s commands to now (nil when not yet known).
    public func master(forSlot slot: Int) -> RedisConfiguration.Endpoint? { owners[slot] }

    /// What the client has met so far. Thread-safe.
    public var statistics: Statistics {
        signal.lock()
        defer { signal.unlock() }
        return stats
    }

    /// Reads the topology now: `CLUSTER SHARDS`, or `CLUSTER SLOTS` where that is unknown, from
    /// the first node that answers, the known masters first, then the seeds, then the replicas
    /// (the node that last failed is asked last).
    public func refreshTopology() throws(RedisClusterError) {
        do {
            try reload()
        } catch {
            if case .closed = error { _ = consumeInterrupt() }
            throw .redis(error)
        }
    }

    private func reload() throws(RedisError) {
        var candidates: [RedisConfiguration.Endpoint] = []
        for endpoint in current.masters + (configuration.clusterSeeds ?? [configuration.endpoint]) + current.shards.flatMap(\.replicas)
        where !candidates.contains(endpoint) && endpoint != lastFailed {
            candidates.append(endpoint)
        }
        if let lastFailed { candidates.append(lastFailed) }
        var lastError = RedisError.connection("no seed node configured")
        for endpoint in candidates {
            do {
                let topology = try readTopology(from: endpoint)
                guard topology.coveredSlots > 0 else {
                    lastError = .server("\(endpoint) serves no slots: not part of a configured cluster yet")
                    continue
                }
                install(topology)
                return
            } catch .closed where interruptPending() {
                throw .closed
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Thread-safe: wakes the call running now (a blocking command, a backoff sleep), which
    /// throws `.redis(.closed)`; with no call running, the next call throws it.
    public func interrupt() {
        signal.lock()
        interruptRequested = true
        let connection = active
        signal.broadcast()
        signal.unlock()
        connection?.interrupt()
    }

    /// Closes every node's connection (they reopen on the next command).
    public func close() {
        for connection in connections.values { connection.close() }
        connections.removeAll()
    }

    // MARK: The redirect loop

    private enum Outcome {
        case redirect(RedisClusterRedirect, String)
        case wait(String)
    }

    private func execute(_ commands: [RedisCommand], slot: Int) throws(RedisClusterError) -> [RedisReply] {
        var replies = [RedisReply](repeating: .null, count: commands.count)
        var pending = Array(commands.indices)
        var askTarget: RedisConfiguration.Endpoint?
        var redirects = 0
        var attempt = 0
        let started = Date()
        while true {
            var node: RedisConfiguration.Endpoint?
            var sent = false
            let got: [RedisReply]
            do throws(RedisError) {
                let target: RedisConfiguration.Endpoint
                if let askTarget { target = askTarget } else { target = try route(slot) }
                node = target
                var batch: [RedisCommand] = []
                batch.reserveCapacity(pending.count * (askTarget == nil ? 1 : 2))
                for index in pending {
                    if askTarget != nil { batch.append(RedisCommand("ASKING")) }
                    batch.append(commands[index])
                }
                got = try roundTrip(batch, to: target, sent: &sent)
            } catch {
                try recover(from: error, node: node, sent: sent, attempt: &attempt, since: started)
                askTarget = nil
                continue
            }
            let outcome = try classify(got, asking: askTarget != nil, pending: &pending, into: &replies, node: node!)
            switch outcome {
            case nil:
                return replies
            case .redirect(let redirect, let message)?:
                redirects += 1
                if redirects > options.maxRedirects { throw .tooManyRedirects(message) }
                switch redirect.kind {
                case .moved:
                    record { $0.moved += 1 }
                    owners[redirect.slot] = redirect.endpoint
                    refreshDue = true
                    askTarget = nil
                case .ask:
                    record { $0.asked += 1 }
                    askTarget = redirect.endpoint
                }
            case .wait(let message)?:
                askTarget = nil
                if message.hasPrefix("CLUSTERDOWN") { refreshDue = true }
                try sleep(attempt: &attempt, since: started, orThrow: .redis(.server(message)))
            }
        }
    }

    /// Sends `batch` to `endpoint` in one round trip. `sent` is set once the connection is open,
    /// so that a failure before it is known to have sent nothing.
    private func roundTrip(_ batch: [RedisCommand], to endpoint: RedisConfiguration.Endpoint, sent: inout Bool) throws(RedisError) -> [RedisReply] {
        let connection = self.connection(to: endpoint)
        try activate(connection)
        defer { deactivate() }
        // Connect now, without the connection's own reconnect backoff (up to 2 s, which would
        // keep a call on a dead master's connection after its replica took over): this loop
        // paces its retries itself, and re-routes between them.
        if !connection.isConnected { try connection.reconnect() }
        sent = true
        return try connection.pipeline(batch)
    }

    /// Decides what a failed round trip means: returns (after the backoff) when it is worth
    /// another, else throws.
    private func recover(from error: RedisError, node: RedisConfiguration.Endpoint?, sent: Bool,
                         attempt: inout Int, since started: Date) throws(RedisClusterError) {
        switch error {
        case .closed where consumeInterrupt():
            throw .redis(.closed)
        case .connection, .closed:
            // .closed without our interrupt: one the connection still held from an interrupt()
            // that came between two of its calls. Retried as a lost connection.
            break
        default:
            throw .redis(error)
        }
        lastFailed = node
        refreshDue = true
        if sent && !options.resendAfterConnectionLoss { throw .redis(error) }
        record { $0.connectionErrors += 1 }
        try sleep(attempt: &attempt, since: started, orThrow: .redis(error))
    }

    /// Stores the final replies of `pending`, leaves in it those to retry, and says how:
    /// nil when none is left. A redirect wins over a wait, `MOVED` over `ASK`.
    private func classify(_ got: [RedisReply], asking: Bool, pending: inout [Int], into replies: inout [RedisReply],
                          node: RedisConfiguration.Endpoint) throws(RedisClusterError) -> Outcome? {
        var retry: [Int] = []
        var outcome: Outcome?
        for (position, index) in pending.enumerated() {
            let reply = got[asking ? 2 * position + 1 : position]
            guard case .error(let message) = reply else {
                replies[index] = reply
                continue
            }
            let code = message.prefix { $0 != " " }
            switch code {
            case "MOVED", "ASK":
                guard let redirect = RedisClusterRedirect(message, answeredBy: node) else {
                    throw .redis(.protocolError("\(node): unreadable redirect \"\(message)\""))
                }
                retry.append(index)
                if case .redirect(let kept, _)? = outcome, kept.kind == .moved { continue }
                outcome = .redirect(redirect, message)
            case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
                retry.append(index)
                if outcome == nil { outcome = .wait(message) }
                if code == "TRYAGAIN" { record { $0.tryAgain += 1 } } else { record { $0.clusterDown += 1 } }
            case "CROSSSLOT":
                throw .crossSlot(message)
            default:
                replies[index] = reply
            }
        }
        pending = retry
        return outcome
    }

    /// The master of `slot`, refreshing the topology first when a refresh is due or the slot's
    /// owner is unknown.
    private func route(_ slot: Int) throws(RedisError) -> RedisConfiguration.Endpoint {
        let stale = refreshDue && (lastRefresh.map { -$0.timeIntervalSinceNow >= options.minimumRefreshInterval } ?? true)
        if stale || owners[slot] == nil {
            do {
                try reload()
            } catch .closed {
                throw .closed
            } catch {
                record { $0.topologyRefreshFailures += 1 }
                // Keep routing on what is known; with nothing known, the call fails as at the
                // connection level (and is retried within its budget).
                if owners[slot] == nil { throw .connection("reading the cluster topology: \(error)") }
            }
        }
        guard let owner = owners[slot] else {
            throw .connection("no master serves slot \(slot) (the cluster does not cover it)")
        }
        return owner
    }

    private func readTopology(from endpoint: RedisConfiguration.Endpoint) throws(RedisError) -> RedisClusterTopology {
        let connection = self.connection(to: endpoint)
        try activate(connection)
        defer { deactivate() }
        let replies = try connection.pipeline([RedisCommand("CLUSTER", "SHARDS")])
        if case .error = replies[0] {
            // Redis < 7 (or a proxy without SHARDS): the older form.
            let slots = try connection.send("CLUSTER", "SLOTS")
            return try RedisClusterTopology.parse(slots: slots, answeredBy: endpoint)
        }
        return try RedisClusterTopology.parse(shards: replies[0], answeredBy: endpoint)
    }

    private func install(_ topology: RedisClusterTopology) {
        current = topology
        owners = [RedisConfiguration.Endpoint?](repeating: nil, count: RedisClusterSlot.count)
        for shard in topology.shards {
            for range in shard.slots where range.lowerBound >= 0 && range.upperBound < RedisClusterSlot.count {
                for slot in range { owners[slot] = shard.master }
            }
        }
        // Close the connections of nodes that left (a failed-over master): they would only hold
        // a socket, or a dead one's reconnect state. A seed reopens when it is asked again.
        let known = Set(topology.shards.flatMap { [$0.master] + $0.replicas })
        for (endpoint, connection) in connections where !known.contains(endpoint) {
            connection.close()
            connections[endpoint] = nil
        }
        refreshDue = false
        lastRefresh = Date()
        record { $0.topologyRefreshes += 1 }
    }

    private func connection(to endpoint: RedisConfiguration.Endpoint) -> RedisConnection {
        if let connection = connections[endpoint] { return connection }
        var nodeConfiguration = configuration
        nodeConfiguration.endpoint = endpoint
        nodeConfiguration.clusterSeeds = nil
        nodeConfiguration.database = 0
        let connection = RedisConnection(lazy: nodeConfiguration)
        connections[endpoint] = connection
        return connection
    }

    // MARK: Interrupts, backoff, statistics

    /// Marks `connection` as the one `interrupt()` wakes; throws `.closed` if an interrupt is
    /// pending (leaving it pending: the call's top level consumes it and throws `.redis(.closed)`).
    private func activate(_ connection: RedisConnection) throws(RedisError) {
        signal.lock()
        defer { signal.unlock() }
        if interruptRequested { throw .closed }
        active = connection
    }

    private func interruptPending() -> Bool {
        signal.lock()
        defer { signal.unlock() }
        return interruptRequested
    }

    private func deactivate() {
        signal.lock()
        active = nil
        signal.unlock()
    }

    private func consumeInterrupt() -> Bool {
        signal.lock()
        defer { signal.unlock() }
        let requested = interruptRequested
        interruptRequested = false
        return requested
    }

    /// Sleeps the next backoff (interruptibly), or throws `error` when the call's retry budget
    /// would be spent.
    private func sleep(attempt: inout Int, since started: Date, orThrow error: RedisClusterError) throws(RedisClusterError) {
        let ceiling = min(options.backoffCap, options.backoffBase * Double(1 << min(attempt, 20)))
        let delay = Double.random(in: (ceiling / 2)...max(ceiling, ceiling / 2 + 1e-6))
        attempt += 1
        if -started.timeIntervalSinceNow + delay > options.retryTimeout { throw error }
        let deadline = Date(timeIntervalSinceNow: delay)
        signal.lock()
        while !interruptRequested {
            if !signal.wait(until: deadline) { break }
        }
        let interrupted = interruptRequested
        interruptRequested = false
        stats.backoffSeconds += delay
        signal.unlock()
        if interrupted { throw .redis(.closed) }
    }

    private func record(_ change: (inout Statistics) -> Void) {
        signal.lock()
        change(&stats)
        signal.unlock()
    }
}
