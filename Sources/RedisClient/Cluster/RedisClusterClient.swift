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
///
/// The options and statistics, blocking commands, topology and routing, and the redirect loop
/// are in `RedisClusterClient+Options`, `+Blocking`, `+Topology` and `+Redirects`.
public final class RedisClusterClient: @unchecked Sendable {
    /// The seeds (`clusterSeeds`, else `endpoint`) and the credentials used for every node.
    public let configuration: RedisConfiguration
    /// Bounds and pacing of the retry loop.
    public let options: Options

    // The state below is internal, not private, only for this client's extensions in
    // RedisClusterClient+Options, +Blocking, +Topology and +Redirects; nothing else touches it.

    /// Guards `active`, `interruptRequested`, `stats`: what other threads touch.
    let signal = NSCondition()
    var active: RedisConnection?
    var interruptRequested = false
    var stats = Statistics()

    // Owned by the calling thread.
    var connections: [RedisConfiguration.Endpoint: RedisConnection] = [:]
    /// Each node's connection object, numbered in the order they were made (for `ConnectionMark`).
    var serials: [RedisConfiguration.Endpoint: Int] = [:]
    var madeConnections = 0
    var owners = [RedisConfiguration.Endpoint?](repeating: nil, count: RedisClusterSlot.count)
    var current = RedisClusterTopology(shards: [])
    var refreshDue = false
    var lastRefresh: Date?
    var lastFailed: RedisConfiguration.Endpoint?

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
    static let retried: Set<String> = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING"]

    // MARK: State

    /// The topology last read (empty before the first command or `refreshTopology()`).
    public var topology: RedisClusterTopology { current }

    /// The master this client would send `slot`'s commands to now (nil when not yet known).
    public func master(forSlot slot: Int) -> RedisConfiguration.Endpoint? { owners[slot] }

    /// The connection over which commands for `slot` go now: its master, and which connection
    /// to it, and which of that connection's sockets. nil before the first command there.
    ///
    /// `WAIT` counts the replicas that have the writes of the connection it is sent on. A
    /// client that reconnected in between (a broken socket, a failover) sends it on a fresh
    /// connection, where it proves nothing: take a mark after the writes, send `WAIT`, and
    /// trust its answer only if the mark is the same afterwards.
    public func connectionMark(forSlot slot: Int) -> ConnectionMark? {
        guard let endpoint = owners[slot], let connection = connections[endpoint], let serial = serials[endpoint] else { return nil }
        return ConnectionMark(endpoint: endpoint, serial: serial, socket: connection.generation)
    }

    /// One connection's socket (`connectionMark(forSlot:)`).
    public struct ConnectionMark: Equatable, Sendable {
        public let endpoint: RedisConfiguration.Endpoint
        let serial: Int
        let socket: Int
    }

    /// What the client has met so far. Thread-safe.
    public var statistics: Statistics {
        signal.lock()
        defer { signal.unlock() }
        return stats
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
}
