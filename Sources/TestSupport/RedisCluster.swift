import Foundation
import RedisClient

/// A real Redis Cluster for tests: `masters × (1 + replicasPerMaster)` redis-servers (each a
/// `RedisServer`: its own free port, temporary directory, and clean-up even when the test
/// process dies), `--cluster-enabled yes`, joined and given the 16384 slots by
/// `redis-cli --cluster create`, and waited for until every node reports `cluster_state:ok`,
/// all agree on who serves which slot, and every replica is in sync.
///
/// `stop()` (idempotent, also run by deinit) kills every server and removes its directory.
public final class RedisCluster: @unchecked Sendable {
    public typealias StartError = RedisServer.StartError

    /// Every node, masters and replicas as `redis-cli` made them (roles change on failover).
    public let servers: [RedisServer]
    /// The nodes' cluster bus ports, held for the cluster's whole life like the client ports.
    private let buses: [PortReservation]

    /// Starts the cluster. `nodeTimeout` (ms) is `cluster-node-timeout`: a master unreachable
    /// that long is failed over. `arguments` go to every redis-server.
    public static func start(masters: Int = 3, replicasPerMaster: Int = 0, nodeTimeout: Int = 1000,
                             arguments: [String] = []) throws -> RedisCluster {
        RedisProcess.ignoreSIGPIPE()
        var servers: [RedisServer] = []
        var buses: [PortReservation] = []
        do {
            for _ in 0..<(masters * (1 + replicasPerMaster)) {
                // The bus port is held like the client port (see `RedisServer`): redis-server
                // binds it with SO_REUSEADDR while the reservation stands, nobody else can.
                let bus = try PortReservation(forListener: true)
                buses.append(bus)
                let server = try RedisServer.start(arguments: [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", String(nodeTimeout), "--cluster-port", String(bus.port),
                    // Speed over durability: no test here restarts a node. A replica syncs at once
                    // (Redis 7 waits 5 s for more replicas to share a diskless transfer).
                    "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                ] + arguments)
                servers.append(server)
            }
            let cluster = RedisCluster(servers: servers, buses: buses)
            try cluster.create(replicasPerMaster: replicasPerMaster)
            try cluster.waitUntilHealthy()
            return cluster
        } catch {
            for server in servers { server.kill() }
            for bus in buses { bus.release() }
            throw error
        }
    }

    private init(servers: [RedisServer], buses: [PortReservation]) {
        self.servers = servers
        self.buses = buses
    }

    deinit {
        stop()
        for bus in buses { bus.release() }
    }

    /// Kills every node. Idempotent. (Each `RedisServer` removes its directory when released.)
    public func stop() {
        for server in servers { server.kill() }
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…`: every node a seed.
    public var url: String {
        "redis+cluster://" + servers.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// The configuration `url` parses to.
    public var configuration: RedisConfiguration {
        // The URL is built here from ports: it always parses.
        (try? RedisConfiguration(url: url)) ?? RedisConfiguration()
    }

    /// The node listening on `port`.
    public func server(port: Int) -> RedisServer? {
        servers.first { $0.port == port }
    }

    /// A plain (non-cluster) connection to one node: it does not follow redirects, so it shows
    /// what that node itself holds and says.
    public func direct(_ port: Int) throws -> RedisConnection {
        try RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
    }

    /// The topology (`CLUSTER SLOTS`) as the first live node that answers sees it.
    public func topology() throws -> RedisClusterTopology {
        for server in servers {
            guard let connection = try? direct(server.port) else { continue }
            defer { connection.close() }
            guard let slots = try? connection.send("CLUSTER", "SLOTS") else { continue }
            return try RedisClusterTopology.parse(slots: slots, answeredBy: .tcp(host: "127.0.0.1", port: server.port))
        }
        throw StartError(description: "no live node answers CLUSTER SLOTS")
    }

    /// The port of the master serving `slot`, as `topology()` sees it.
    public func masterPort(forSlot slot: Int) throws -> Int {
        let topology = try topology()
        for shard in topology.shards where shard.slots.contains(where: { $0.contains(slot) }) {
            if case .tcp(_, let port) = shard.master { return port }
        }
        throw StartError(description: "no master serves slot \(slot)")
    }

    /// The ports of the masters that serve slots, as `topology()` sees them.
    public func masterPorts() throws -> [Int] {
        try topology().masters.compactMap { if case .tcp(_, let port) = $0 { port } else { nil } }
    }

    /// The ports of the live replicas of the master on `port`, from each node's own `INFO
    /// replication` (`CLUSTER SLOTS` leaves out a replica its node has not yet seen acknowledge
    /// any replication offset).
    public func replicaPorts(of port: Int) -> [Int] {
        servers.compactMap { server in
            guard let connection = try? direct(server.port) else { return nil }
            defer { connection.close() }
            let info = (try? connection.send("INFO", "replication").string) ?? ""
            return info.contains("role:slave") && info.contains("master_port:\(port)\r\n") ? server.port : nil
        }
    }

    /// Moves `slot` from its master to the master on `targetPort`, as `redis-cli --cluster
    /// reshard` does: `beginMigration`, `migrateKeys` `batch` at a time (sleeping `pause` seconds
    /// between batches, so clients meet the slot half-moved), `finishMigration`.
    public func migrate(slot: Int, to targetPort: Int, batch: Int = 10, pause: Double = 0) throws {
        guard let migration = try beginMigration(slot: slot, to: targetPort) else { return }
        while try migrateKeys(migration, count: batch) > 0 {
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
        }
        try finishMigration(migration)
    }

    /// A slot being moved: its old and new master.
    public struct Migration: Sendable {
        public let slot: Int
        public let sourcePort: Int
        public let targetPort: Int
        let targetID: String
    }

    /// `CLUSTER SETSLOT IMPORTING` on the target, `MIGRATING` on the source; nil when the
    /// target already serves the slot.
    public func beginMigration(slot: Int, to targetPort: Int) throws -> Migration? {
        let sourcePort = try masterPort(forSlot: slot)
        guard sourcePort != targetPort else { return nil }
        let source = try direct(sourcePort)
        let target = try direct(targetPort)
        defer {
            source.close()
            target.close()
        }
        guard let sourceID = try source.send("CLUSTER", "MYID").string, let targetID = try target.send("CLUSTER", "MYID").string else {
            throw StartError(description: "CLUSTER MYID did not answer a string")
        }
        _ = try target.send("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID)
        _ = try source.send("CLUSTER", "SETSLOT", slot, "MIGRATING", targetID)
        return Migration(slot: slot, sourcePort: sourcePort, targetPort: targetPort, targetID: targetID)
    }

    /// MIGRATEs up to `count` of the slot's keys (or those named) to the target; returns how
    /// many moved.
    @discardableResult
    public func migrateKeys(_ migration: Migration, count: Int = 10, keys named: [String]? = nil) throws -> Int {
        let source = try direct(migration.sourcePort)
        defer { source.close() }
        let keys: [[UInt8]] = try named.map { $0.map { Array($0.utf8) } }
            ?? (source.send("CLUSTER", "GETKEYSINSLOT", migration.slot, count).array ?? []).compactMap(\.bytes)
        if keys.isEmpty { return 0 }
        var arguments: [any RedisArgument] = ["127.0.0.1", migration.targetPort, "", 0, 5000, "KEYS"]
        arguments += keys
        _ = try source.send(RedisCommand("MIGRATE", arguments: arguments))
        return keys.count
    }

    /// `CLUSTER SETSLOT NODE` on the target, the source and every other master (keys left on the
    /// source are migrated first).
    public func finishMigration(_ migration: Migration) throws {
        while try migrateKeys(migration, count: 100) > 0 {}
        let others = try masterPorts().filter { $0 != migration.targetPort && $0 != migration.sourcePort }
        for port in [migration.targetPort, migration.sourcePort] + others {
            let node = try direct(port)
            defer { node.close() }
            _ = try node.send("CLUSTER", "SETSLOT", migration.slot, "NODE", migration.targetID)
        }
    }

    /// Waits until every live node says `cluster_state:ok`, knows every live node, all agree
    /// on each slot's master, and every replica's link to its master is up.
    public func waitUntilHealthy(timeout: Double = 30) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var last = "not asked yet"
        while Date() < deadline {
            if let problem = healthProblem() {
                last = problem
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            return
        }
        throw StartError(description: "the cluster did not become healthy within \(timeout) s: \(last)")
    }

    /// Why the cluster is not healthy now, nil when it is.
    private func healthProblem() -> String? {
        var views: Set<String> = []
        for server in servers {
            guard let connection = try? direct(server.port) else { continue }
            defer { connection.close() }
            do {
                let info = try connection.send("CLUSTER", "INFO").string ?? ""
                if !info.contains("cluster_state:ok") { return "\(server.port): cluster_state not ok" }
                let slots = try connection.send("CLUSTER", "SLOTS")
                let topology = try RedisClusterTopology.parse(slots: slots, answeredBy: .tcp(host: "127.0.0.1", port: server.port))
                if topology.coveredSlots != RedisClusterSlot.count { return "\(server.port): \(topology.coveredSlots) slots covered" }
                views.insert(topology.shards.map { "\($0.slots)=\($0.master)" }.sorted().joined(separator: ";"))
                let replication = try connection.send("INFO", "replication").string ?? ""
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") {
                    return "\(server.port): replica not in sync"
                }
            } catch {
                return "\(server.port): \(error)"
            }
        }
        return views.count == 1 ? nil : "nodes disagree on the slots (\(views.count) views)"
    }

    private func create(replicasPerMaster: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.redisCLI())
        process.arguments = ["--cluster", "create"] + servers.map { "127.0.0.1:\($0.port)" }
            + ["--cluster-replicas", String(replicasPerMaster), "--cluster-yes"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let deadline = try ChildProcess.run(process, deadline: 60)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try deadline.wait()
        guard process.terminationStatus == 0, text.contains("[OK] All 16384 slots covered") else {
            throw StartError(description: "redis-cli --cluster create failed (\(process.terminationStatus)):\n\(text.suffix(2000))")
        }
    }

    private static func redisCLI() -> String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/redis-cli"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/redis-cli"
    }
}
