import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

/// One writer thread that loops over `keys` through its own cluster client: each round sets
/// every key to `<key>#<round>` and reads it back. It records, per key, the last round
/// acknowledged (and, with `waitForReplica`, also confirmed by `WAIT 1` on the same slot), the
/// last round attempted, and every error and read that disagreed. With `readAllEachRound`, each
/// round ends by reading every key again with `pipelinePerMaster`.
final class ClusterWriter: @unchecked Sendable {
    let keys: [String]
    let client: RedisClusterClient
    private let waitForReplica: Bool
    private let readAllEachRound: Bool
    private let lock = NSLock()
    private var stopRequested = false
    private(set) var acknowledged: [Int]
    private(set) var attempted: [Int]
    /// The last round whose SET was answered OK (confirmed by a replica or not).
    private(set) var setOK: [Int]
    private(set) var rounds = 0
    private(set) var errors: [String] = []
    private(set) var staleReads: [String] = []
    private(set) var slowest = 0.0
    /// Seconds each completed round took.
    private(set) var roundSeconds: [Double] = []
    private var thread: Background<Void>?

    init(keys: [String], configuration: RedisConfiguration, options: RedisClusterClient.Options = .init(),
         waitForReplica: Bool = false, readAllEachRound: Bool = false) {
        self.keys = keys
        self.waitForReplica = waitForReplica
        self.readAllEachRound = readAllEachRound
        client = RedisClusterClient(configuration: configuration, options: options)
        acknowledged = Array(repeating: -1, count: keys.count)
        attempted = Array(repeating: -1, count: keys.count)
        setOK = Array(repeating: -1, count: keys.count)
    }

    func start() {
        thread = Background { [self] in run() }
    }

    /// Rounds completed so far (thread-safe).
    var completedRounds: Int { lock.withLock { rounds } }

    func waitForRounds(_ count: Int, timeout: Double = 60) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while completedRounds < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    func stop() throws {
        lock.withLock { stopRequested = true }
        try thread?.wait()
    }

    private func run() {
        var round = 0
        while !lock.withLock({ stopRequested }) {
            let roundStarted = Date()
            for (index, key) in keys.enumerated() {
                let value = "\(key)#\(round)"
                let started = Date()
                attempted[index] = round
                do {
                    _ = try client.send("SET", key, value)
                    setOK[index] = round
                    var confirmed = true
                    if waitForReplica {
                        confirmed = (try client.send(RedisCommand("WAIT", 1, 10), routedBy: key).integer ?? 0) >= 1
                    }
                    if confirmed { acknowledged[index] = round }
                    let read = try client.send("GET", key)
                    if read != .bulk(Array(value.utf8)) { staleReads.append("\(key): wrote \(value), read \(read)") }
                } catch {
                    errors.append("\(key): \(error)")
                }
                slowest = max(slowest, -started.timeIntervalSinceNow)
            }
            if readAllEachRound {
                do {
                    let all = try client.pipelinePerMaster(keys.map { RedisCommand("GET", $0) })
                    for (index, read) in all.enumerated() where acknowledged[index] == round && read != .bulk(Array("\(keys[index])#\(round)".utf8)) {
                        staleReads.append("\(keys[index]): wrote round \(round), read \(read) in the round's pipelined read")
                    }
                } catch {
                    errors.append("pipelined read: \(error)")
                }
            }
            round += 1
            roundSeconds.append(-roundStarted.timeIntervalSinceNow)
            lock.withLock { rounds = round }
        }
    }

    /// Reads every key with a fresh client: each must hold its last acknowledged round or a
    /// later attempt (never an older value, never nothing when a write was acknowledged).
    /// `unconfirmed` counts the keys that lost a SET answered OK but not confirmed by a replica:
    /// what a failover loses without `WAIT`.
    func lostWrites(configuration: RedisConfiguration, unconfirmed: inout Int) throws -> [String] {
        let reader = RedisClusterClient(configuration: configuration)
        var lost: [String] = []
        for (index, key) in keys.enumerated() where acknowledged[index] >= 0 {
            let value = try reader.send("GET", key).string ?? ""
            let round = Int(value.split(separator: "#").last ?? "") ?? -1
            if round < setOK[index] { unconfirmed += 1 }
            if round < acknowledged[index] || round > attempted[index] {
                lost.append("\(key): acknowledged round \(acknowledged[index]), holds \"\(value)\"")
            }
        }
        return lost
    }
}

@Suite("Cluster: resharding and failover under load", .sharesMachine)
struct ClusterChangeTests {
    @Test("resharding under load: ASK then MOVED followed, no acknowledged write lost, every read current")
    func resharding() throws {
        try withCluster { cluster in
            // 200 keys in the slot that moves, 200 spread over the others.
            let keys = (0..<200).map { "{hot}:\($0)" } + (0..<200).map { "spread:\($0)" }
            let writer = ClusterWriter(keys: keys, configuration: cluster.configuration, readAllEachRound: true)
            let slot = RedisClusterSlot.of("{hot}")
            let source = try cluster.masterPort(forSlot: slot)
            let target = try cluster.masterPorts().first { $0 != source }!
            writer.start()
            writer.waitForRounds(2)
            // Keys move 10 at a time with pauses, so the writer meets the slot half-moved (ASK).
            let started = Date()
            try cluster.migrate(slot: slot, to: target, batch: 10, pause: 0.02)
            let migration = -started.timeIntervalSinceNow
            let roundsAtMove = writer.completedRounds
            // Then back again, faster, and on to the third master: three moves in all.
            try cluster.migrate(slot: slot, to: source, batch: 50)
            let third = try cluster.masterPorts().first { $0 != source && $0 != target }!
            try cluster.migrate(slot: slot, to: third, batch: 50, pause: 0.01)
            writer.waitForRounds(writer.completedRounds + 2)
            try writer.stop()

            let statistics = writer.client.statistics
            print("resharding: \(writer.completedRounds) rounds of \(keys.count) keys (\(roundsAtMove) when the first move ended, after \(String(format: "%.2f", migration)) s); \(statistics); slowest call \(String(format: "%.3f", writer.slowest)) s")
            #expect(writer.errors.isEmpty, "\(writer.errors.prefix(5))")
            #expect(writer.staleReads.isEmpty, "\(writer.staleReads.prefix(5))")
            var unconfirmed = 0
            #expect(try writer.lostWrites(configuration: cluster.configuration, unconfirmed: &unconfirmed).isEmpty)
            #expect(unconfirmed == 0)
            #expect(statistics.asked > 0)
            #expect(statistics.moved > 0)
            #expect(writer.client.master(forSlot: slot) == .tcp(host: "127.0.0.1", port: third))
            // All 200 keys of the slot, and only there, on the last owner.
            let owner = try cluster.direct(third)
            defer { owner.close() }
            #expect(try owner.send("CLUSTER", "COUNTKEYSINSLOT", slot) == .integer(200))
        }
    }

    @Test("failover under load: a master SIGKILLed, its replica promoted; the client keeps serving and loses no write a replica confirmed")
    func failover() throws {
        let creation = Date()
        // hz 100: WAIT's timeout (on the promoted master, which has no replica left) is served
        // within 10 ms rather than 100.
        try withCluster(replicasPerMaster: 1, arguments: ["--hz", "100"]) { cluster in
            print("failover: cluster of 3 masters and 3 replicas in sync after \(String(format: "%.2f", -creation.timeIntervalSinceNow)) s")
            let keys = (0..<150).map { "f:\($0)" }
            var options = RedisClusterClient.Options()
            options.retryTimeout = 20
            let writer = ClusterWriter(keys: keys, configuration: cluster.configuration, options: options, waitForReplica: true)
            let victim = try cluster.masterPort(forSlot: RedisClusterSlot.of(keys[0]))
            writer.start()
            writer.waitForRounds(2)
            let writing = -creation.timeIntervalSinceNow
            let killed = Date()
            cluster.server(port: victim)!.kill()
            try cluster.waitUntilHealthy(timeout: 30)
            let promoted = -killed.timeIntervalSinceNow
            let roundsAtPromotion = writer.completedRounds
            // Every key written again once the cluster is whole, through the same client.
            writer.waitForRounds(roundsAtPromotion + 2)
            try writer.stop()
            print("failover: 2 rounds by \(String(format: "%.2f", writing)) s, done writing at \(String(format: "%.2f", -creation.timeIntervalSinceNow)) s")

            let statistics = writer.client.statistics
            let confirmed = writer.acknowledged.filter { $0 >= 0 }.count
            print("failover: healthy \(String(format: "%.2f", promoted)) s after SIGKILL of :\(victim); \(writer.completedRounds) rounds of \(keys.count) keys; \(statistics); slowest call \(String(format: "%.3f", writer.slowest)) s; rounds took \(writer.roundSeconds.map { String(format: "%.2f", $0) }) s; \(confirmed) keys with a replica-confirmed write")
            #expect(writer.completedRounds >= roundsAtPromotion + 2)
            #expect(writer.errors.isEmpty, "\(writer.errors.prefix(5))")
            #expect(writer.staleReads.isEmpty, "\(writer.staleReads.prefix(5))")
            var unconfirmed = 0
            #expect(try writer.lostWrites(configuration: cluster.configuration, unconfirmed: &unconfirmed).isEmpty)
            print("failover: \(unconfirmed) keys lost a SET answered OK that no replica had confirmed")
            #expect(statistics.connectionErrors > 0)
            #expect(writer.client.master(forSlot: RedisClusterSlot.of(keys[0])) != .tcp(host: "127.0.0.1", port: victim))
        }
    }

    @Test("a BRPOP on a master that CLUSTER FAILOVER demotes is re-issued on the promoted replica; interrupt() wakes a pop")
    func blockedPopFollowsFailover() throws {
        try withCluster(replicasPerMaster: 1) { cluster in
            let client = RedisClusterClient(configuration: cluster.configuration)
            let slot = RedisClusterSlot.of("{u}q")
            let master = try cluster.masterPort(forSlot: slot)
            guard let replica = cluster.replicaPorts(of: master).first else {
                Issue.record("no replica of :\(master)")
                return
            }
            let masterNode = try cluster.direct(master)
            let replicaNode = try cluster.direct(replica)
            defer {
                masterNode.close()
                replicaNode.close()
            }
            let waiter = Background { try client.blockingPop(["{u}q"], timeout: 20) }
            try waitUntilBlocked(masterNode, command: "brpop")
            _ = try replicaNode.send("CLUSTER", "FAILOVER")
            // CLUSTER FAILOVER answers before the failover: a cluster still healthy the old way
            // is not yet the new one (on a loaded machine the check once came first).
            let promotedBy = Date().addingTimeInterval(30)
            while (try? cluster.masterPort(forSlot: slot)) != replica && Date() < promotedBy {
                Thread.sleep(forTimeInterval: 0.05)
            }
            try cluster.waitUntilHealthy()
            #expect(try cluster.masterPort(forSlot: slot) == replica)
            // Blocked again, on the promoted replica: re-issued, not timed out or failed.
            try waitUntilBlocked(replicaNode, command: "brpop")
            _ = try replicaNode.send("LPUSH", "{u}q", "after-failover")
            let popped = try waiter.wait()
            #expect(popped?.key == "{u}q" && popped?.value == bytes("after-failover"))
            let statistics = client.statistics
            print("manual failover under a blocked BRPOP: \(statistics)")
            #expect(statistics.moved + statistics.blockingReissues >= 1)

            let interrupted = Background { try client.blockingPop(["{u}q"], timeout: 20) }
            try waitUntilBlocked(replicaNode, command: "brpop")
            client.interrupt()
            #expect(throws: RedisClusterError.redis(.closed)) { try interrupted.wait() }
            #expect(try client.send("LLEN", "{u}q") == .integer(0))
        }
    }
}
