import Foundation
import Logging
import RedisClient
import Testing
import TestSupport
@testable import CoordinatorDaemon

/// One Redis Cluster (3 masters, 3 replicas) shared by the tests of a suite that run at the
/// same time: the first to arrive starts it (about 2 s, and up to 5 s more for the replicas'
/// sync), the last to leave stops it. Each test keeps to a key prefix of its own
/// (`ClusterHarness`), so their daemons never meet: every key, queue, lease and registry of a
/// daemon is under its `--prefix`.
final class SharedCluster: @unchecked Sendable {
    private let lock = NSLock()
    private var cluster: RedisCluster?
    private var users = 0
    private let replicasPerMaster: Int

    init(replicasPerMaster: Int = 1) {
        self.replicasPerMaster = replicasPerMaster
    }

    /// Runs `body` with the shared cluster, started if none runs.
    func use<T>(_ body: (RedisCluster) throws -> T) throws -> T {
        let cluster = try acquire()
        defer { release() }
        return try body(cluster)
    }

    private func acquire() throws -> RedisCluster {
        // Held while the cluster starts: the tests are on threads of their own (`.sharesMachine`).
        lock.lock()
        defer { lock.unlock() }
        let running = try cluster ?? RedisCluster.start(masters: 3, replicasPerMaster: replicasPerMaster)
        cluster = running
        users += 1
        return running
    }

    private func release() {
        lock.lock()
        defer { lock.unlock() }
        users -= 1
        if users == 0 {
            cluster?.stop()
            cluster = nil
        }
    }
}

/// One test's daemons (in process, `--partitions 8`) and cluster client on a shared cluster,
/// under a prefix of its own; reads across partitions as a test may (it scans, the daemon never).
final class ClusterHarness {
    static let partitionCount = 8
    let cluster: RedisCluster
    let prefix: String
    let root: Keys
    let client: RedisClusterClient
    let partitions = Partitions(count: ClusterHarness.partitionCount)
    private var daemons: [Daemon] = []

    init(_ cluster: RedisCluster, name: String) {
        self.cluster = cluster
        prefix = "\(name)\(UInt32.random(in: 0...UInt32.max))"
        root = Keys(prefix: prefix)
        client = RedisClusterClient(configuration: cluster.configuration)
    }

    deinit { stop() }

    func configuration(_ tweak: (inout DaemonConfiguration) -> Void = { _ in }) -> DaemonConfiguration {
        var config = DaemonConfiguration()
        config.redisURL = cluster.url
        config.prefix = prefix
        config.partitions = Self.partitionCount
        config.simSpeed = 0
        config.heartbeatTTL = 2
        config.planLease = 2
        tweak(&config)
        return config
    }

    @discardableResult
    func startDaemon(logger: Logger = Harness.quietLogger, _ tweak: (inout DaemonConfiguration) -> Void = { _ in }) throws -> Daemon {
        let daemon = try Daemon(configuration: configuration(tweak), logger: logger)
        daemon.start()
        daemons.append(daemon)
        return daemon
    }

    /// Stops the daemons (each finishes what it holds) and closes the client. Idempotent.
    func stop() {
        for daemon in daemons { daemon.stop() }
        daemons = []
        client.close()
    }

    /// The keys of a customer's partition, and of the partition an id names.
    func keys(customer: String) -> Keys { root.partition(partitions.of(customer: customer)) }
    func keys(id: String) throws -> Keys { root.partition(try #require(partitions.of(id: id), "\(id) names no partition")) }
    var allPartitions: [Keys] { (0..<Self.partitionCount).map { root.partition($0) } }

    /// A name for a reply list of this test (outside the prefix).
    func list(_ name: String) -> String { "test-\(prefix):\(name)" }

    func push(_ message: String, to queue: String = "requests") throws {
        _ = try client.send("LPUSH", root.queue(queue), message)
    }

    /// The oldest reply on `list`, waited for.
    func reply(on list: String, timeout: Double = 20) throws -> [String: Any] {
        guard let popped = try client.blockingPop([list], timeout: timeout) else {
            throw HarnessError.timeout("no reply on \(list) within \(timeout) s")
        }
        return try Harness.object(popped.value)
    }

    func length(_ list: String) throws -> Int { Int(try client.send("LLEN", list).integer ?? -1) }

    func plan(_ id: String) throws -> [String: Any]? {
        guard let bytes = try client.send("GET", try keys(id: id).plan(id)).bytes else { return nil }
        return try Harness.object(bytes)
    }

    func wait(_ what: String, timeout: Double = 20, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if try condition() { return }
        throw HarnessError.timeout("waited \(timeout) s for \(what)")
    }

    func waitForPlan(_ id: String, status: String, timeout: Double = 20) throws -> [String: Any] {
        var last: [String: Any]?
        try wait("plan \(id) to be \(status)", timeout: timeout) {
            last = try plan(id)
            return last?["status"] as? String == status
        }
        return try #require(last)
    }

    /// Every partition's dead letters and the global list's, one pipeline per master.
    func deadLetters() throws -> [[String: Any]] {
        let lists = allPartitions.map(\.dead) + [root.dead]
        return try client.pipelinePerMaster(lists.map { RedisCommand("LRANGE", $0, 0, -1) }).flatMap(Harness.objects)
    }

    func deadLettersEventually(count: Int, timeout: Double = 20) throws -> [[String: Any]] {
        var letters: [[String: Any]] = []
        try wait("\(count) dead letters", timeout: timeout) {
            letters = try deadLetters()
            return letters.count >= count
        }
        return letters
    }

    /// Every partition's events, in each stream's order (partition by partition).
    func events() throws -> [[String: Any]] {
        let streams = try client.pipelinePerMaster(allPartitions.map { RedisCommand("XRANGE", $0.eventStream, "-", "+") })
        return try streams.flatMap { try ($0.array ?? []).map { try Harness.streamEntry($0).event } }
    }

    /// Every key under the prefix, on every master (SCAN: for tests only).
    func allKeys() throws -> [String] {
        var keys: [String] = []
        for port in try cluster.masterPorts() {
            let node = try cluster.direct(port)
            defer { node.close() }
            var cursor = "0"
            repeat {
                let page = try node.send("SCAN", cursor, "MATCH", "\(prefix):*", "COUNT", 1000).array ?? []
                cursor = page.first?.string ?? "0"
                keys += (page.last?.array ?? []).compactMap(\.string)
            } while cursor != "0"
        }
        return keys
    }

    /// Proof that nothing is left to do: every entry queue, partition queue, ingress list and
    /// outbox is empty, so every message taken was committed and every reply delivered.
    func settle(timeout: Double = 20) throws {
        try wait("nothing queued, in flight or in an outbox", timeout: timeout) {
            var lists = ["requests", "approvals", "steps:results"].map { root.queue($0) }
            for keys in allPartitions {
                lists += [keys.requests, keys.approvals, keys.stepResults, keys.outbox]
            }
            let waiting = try client.pipelinePerMaster(lists.map { RedisCommand("LLEN", $0) }).reduce(0) { $0 + Int($1.integer ?? 1) }
            guard waiting == 0 else { return false }
            // Message in-flight lists (intake, ingress, outbox senders); an executor's lists hold running plans.
            let held = try allKeys().filter { key in
                key.contains(":inflight:") && !key.hasSuffix(Keys.oversizedSuffix)
                    && [":requests", ":approvals", ":steps:results", ":outbox", ":ingress:"].contains { key.contains($0) }
            }
            return try held.allSatisfy { try length($0) == 0 }
        }
    }
}

extension RedisCluster {
    /// Where each of `needles` stands on the live masters (SCAN, as a test may): the lists,
    /// strings, hashes and streams whose contents hold it, per node. For a failure's message.
    func whereIs(_ needles: [String]) -> String {
        var found: [String: [String]] = [:]
        for port in (try? masterPorts()) ?? [] {
            guard let node = try? direct(port) else { continue }
            defer { node.close() }
            var cursor = "0"
            repeat {
                guard let page = try? node.send("SCAN", cursor, "COUNT", 1000).array, page.count == 2 else { break }
                cursor = page[0].string ?? "0"
                for key in (page[1].array ?? []).compactMap(\.string) {
                    let type = (try? node.send("TYPE", key).string) ?? ""
                    let contents: [RedisReply] = switch type {
                    case "list": (try? node.send("LRANGE", key, 0, -1).array) ?? []
                    case "string": [(try? node.send("GET", key)) ?? .null]
                    case "hash": (try? node.send("HGETALL", key).array) ?? []
                    case "stream": ((try? node.send("XRANGE", key, "-", "+").array) ?? []).flatMap { $0.array?.last?.array ?? [] }
                    case "zset": (try? node.send("ZRANGE", key, 0, -1).array) ?? []
                    case "set": (try? node.send("SMEMBERS", key).array) ?? []
                    default: []
                    }
                    let text = contents.compactMap(\.bytes).map { String(decoding: $0, as: UTF8.self) }
                    for needle in needles where key.contains(needle) || text.contains(where: { $0.contains("\"\(needle)\"") }) {
                        found[needle, default: []].append(":\(port) \(type) \(key)")
                    }
                }
            } while cursor != "0"
        }
        return needles.map { "\($0) in [\((found[$0] ?? []).joined(separator: ", "))]" }.joined(separator: "; ")
    }
}
