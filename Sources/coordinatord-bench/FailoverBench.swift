import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient
import TestSupport

/// What a failover loses: a local cluster of 3 masters and 3 replicas, one daemon under
/// `--cluster`, a master SIGKILLed under load; every reply a client got is then compared with
/// what the state shows (the request's dedupe record, its plan in the partition's event stream).
/// One JSON line per run; the `--acked` values alternate run by run.
struct FailoverBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "A master SIGKILLed under load on a cluster: replies whose effects were lost, or answered twice differently.")

    @Option(help: "Runs per --acked value.") var runs: Int = 3
    @Option(help: "The daemon's --min-replicas-acked values, comma-separated, alternating run by run.") var acked: String = "0,1"
    @Option(help: "Customers (each with its own reply list).") var customers: Int = 60
    @Option(help: "Requests per customer: half pushed before the kill, half right after it.") var perCustomer: Int = 10
    @Option(help: "The daemon's --partitions.") var partitions: Int = 8
    @Option(help: "Kill the master once this many replies have been delivered.") var killAfter: Int = 100
    @Option(help: "Before the kill, stop the master's replica (SIGSTOP) and cut its link for this many seconds while the load goes on: replication lag, as a slow network or a busy replica gives (0: none).")
    var replicaLag: Double = 0

    func validate() throws {
        if runs < 1 || customers < 1 || perCustomer < 2 || partitions < 1 || killAfter < 1 {
            throw ValidationError("--runs, --customers, --partitions, --kill-after must be at least 1, --per-customer at least 2")
        }
    }

    func run() throws {
        RedisProcess.ignoreSIGPIPE()
        let values = acked.split(separator: ",").compactMap { Int($0) }
        for run in 0..<runs {
            for value in values {
                var trial = FailoverTrial(acked: value, customers: customers, perCustomer: perCustomer,
                                          partitions: partitions, killAfter: killAfter, tag: "fo\(run)-\(value)")
                trial.replicaLag = replicaLag
                emit(try trial.run())
            }
        }
    }
}

/// One run of `FailoverBench`.
struct FailoverTrial {
    let acked: Int
    let customers: Int
    let perCustomer: Int
    let partitions: Int
    let killAfter: Int
    let tag: String
    var replicaLag: Double = 0
    /// Every reply delivered, by customer.
    private var received: [[[UInt8]]] = []

    init(acked: Int, customers: Int, perCustomer: Int, partitions: Int, killAfter: Int, tag: String) {
        (self.acked, self.customers, self.perCustomer, self.partitions, self.killAfter, self.tag) =
            (acked, customers, perCustomer, partitions, killAfter, tag)
        received = Array(repeating: [], count: customers)
    }

    private func customer(_ c: Int) -> String { "\(tag)-cust-\(c)" }
    private func list(_ c: Int) -> String { "bench:\(tag):replies:\(c)" }
    private func id(_ c: Int, _ r: Int) -> String { "\(tag)-\(c)-\(r)" }

    private func push(_ client: RedisClusterClient, requests: Range<Int>) throws {
        let commands = (0..<customers).flatMap { c in
            requests.map { r in
                RedisCommand("LPUSH", "coord:requests",
                    #"{"kind":"coordinate","request_id":"\#(id(c, r))","reply_to":"\#(list(c))","customer_id":"\#(customer(c))","auto_approve":true,"execute_now":true,"recommendations":[{"id":"rec-\#(id(c, r))","agent_id":"bench-agent","type":"cost","action":"migrate_to_spot","risk_level":"low","estimated_savings":100,"affected_resources":["res-\#(id(c, r))"],"priority":1,"confidence":0.9}]}"#)
            }
        }
        _ = try client.pipeline(commands)
    }

    /// Pops whatever replies are waiting; returns how many came.
    @discardableResult
    private mutating func collect(_ client: RedisClusterClient) throws -> Int {
        let replies = try client.pipelinePerMaster((0..<customers).map { RedisCommand("RPOP", list($0), 1000) })
        var count = 0
        for (c, reply) in replies.enumerated() {
            let values = (reply.array ?? []).compactMap(\.bytes)
            received[c] += values
            count += values.count
        }
        return count
    }

    /// Messages not yet answered: the entry queue, the partitions' queues and outboxes.
    private func backlog(_ client: RedisClusterClient) throws -> Int {
        var keys = ["coord:requests"]
        for p in 0..<partitions { keys += ["coord:{p\(p)}:outbox", "coord:{p\(p)}:requests"] }
        return try client.pipelinePerMaster(keys.map { RedisCommand("LLEN", $0) }).reduce(0) { $0 + Int($1.integer ?? 0) }
    }

    mutating func run() throws -> String {
        let cluster = try RedisCluster.start(masters: 3, replicasPerMaster: 1, arguments: ["--hz", "100"])
        defer { cluster.stop() }
        let fleet = try Fleet(count: 1, redis: cluster.configuration, url: cluster.url,
                              extra: ["--partitions", String(partitions), "--heartbeat-ttl", "2", "--plan-lease", "2",
                                      "--min-replicas-acked", String(acked)])
        defer { fleet.stop() }
        try fleet.waitUntilHolding(partitions: partitions)
        var options = RedisClusterClient.Options()
        options.retryTimeout = 30
        let client = RedisClusterClient(configuration: cluster.configuration, options: options)
        defer { client.close() }

        let half = perCustomer / 2
        try push(client, requests: 0..<half)
        var delivered = 0
        let loaded = Date().addingTimeInterval(60)
        while delivered < min(killAfter, customers * half), Date() < loaded { delivered += try collect(client) }
        let victim = try cluster.masterPort(forSlot: RedisClusterSlot.of("coord:{p0}:owner"))
        let entryOnVictim = try cluster.masterPort(forSlot: RedisClusterSlot.of("coord:requests")) == victim
        // Replication lag: the victim's replicas stopped while the load goes on, and woken once
        // it is dead (one of them is then promoted without what the master did meanwhile).
        let replicas = try replicaLag > 0 ? cluster.replicaPorts(of: victim).map { try Self.pid(cluster, port: $0) } : []
        for pid in replicas { kill(pid, SIGSTOP) }
        if replicaLag > 0 {
            // What the master already sent waits in the stopped replica's socket buffer: cut the
            // link, so that what the master does from now on reaches no replica.
            let master = try cluster.direct(victim)
            _ = try master.send("CLIENT", "KILL", "TYPE", "replica")
            master.close()
        }
        let lagged = Date().addingTimeInterval(replicaLag)
        while Date() < lagged { delivered += try collect(client) }
        let killed = Date()
        cluster.server(port: victim)!.kill()
        for pid in replicas { kill(pid, SIGCONT) }
        try push(client, requests: half..<perCustomer)
        try cluster.waitUntilHealthy(timeout: 30)
        let healthy = Date().timeIntervalSince(killed)
        // Until every request is answered and nothing waits, or 60 s of nothing new.
        var quietSince = Date()
        while Date().timeIntervalSince(quietSince) < 60 {
            if try collect(client) > 0 { quietSince = Date() }
            if answered().count == customers * perCustomer, try backlog(client) == 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let settled = Date().timeIntervalSince(killed)
        fleet.stop()
        try collect(client)
        var fields = try compare(client)
        fields += ["\"acked\":\(acked)", "\"requests\":\(customers * perCustomer)", "\"delivered_before_kill\":\(delivered)",
                   "\"entry_queue_on_victim\":\(entryOnVictim)", "\"replica_lag_s\":\(replicaLag)",
                   "\"healthy_s\":" + String(format: "%.2f", healthy), "\"settled_s\":" + String(format: "%.2f", settled)]
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A node's process id (INFO server).
    private static func pid(_ cluster: RedisCluster, port: Int) throws -> pid_t {
        let node = try cluster.direct(port)
        defer { node.close() }
        let info = try node.send("INFO", "server").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = pid_t(line.dropFirst("process_id:".count)) else { throw ValidationError("no process_id from :\(port)") }
        return pid
    }

    /// Request ids with at least one reply.
    private func answered() -> Set<String> {
        var ids = Set<String>()
        for replies in received { for reply in replies { if let id = Self.requestID(reply) { ids.insert(id) } } }
        return ids
    }

    private static func requestID(_ reply: [UInt8]) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any])?["request_id"] as? String
    }

    /// Each request's replies against its dedupe record and its plans, as JSON fields.
    private func compare(_ client: RedisClusterClient) throws -> [String] {
        let split = Partitions(count: partitions)
        var created: [String: Int] = [:]
        for p in 0..<partitions {
            for entry in try client.send("XRANGE", "coord:{p\(p)}:events:stream", "-", "+").array ?? [] {
                guard let fields = entry.array?.last?.array, let i = fields.firstIndex(where: { $0.string == "event" }),
                      i + 1 < fields.count, let bytes = fields[i + 1].bytes,
                      let event = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                      event["type"] as? String == "plan.created", let rec = event["recommendation_id"] as? String else { continue }
                created[rec, default: 0] += 1
            }
        }
        var counts: [String: Int] = ["unanswered": 0, "answered_twice_differently": 0, "byte_identical_repeats": 0,
                                     "effects_lost": 0, "reply_differs_from_state": 0, "took_effect_twice": 0]
        for c in 0..<customers {
            let k = split.of(customer: customer(c))
            let records = try client.pipeline((0..<perCustomer).map {
                RedisCommand("GET", "coord:{p\(k)}:{\(customer(c))}:dedupe:\(id(c, $0))")
            })
            var byID: [String: [[UInt8]]] = [:]
            for reply in received[c] { if let id = Self.requestID(reply) { byID[id, default: []].append(reply) } }
            for r in 0..<perCustomer {
                let replies = byID[id(c, r)] ?? []
                let plans = created["rec-\(id(c, r))", default: 0]
                if plans > 1 { counts["took_effect_twice"]! += 1 }
                guard let first = replies.first else {
                    counts["unanswered"]! += 1
                    continue
                }
                let distinct = Set(replies)
                if distinct.count > 1 { counts["answered_twice_differently"]! += 1 }
                counts["byte_identical_repeats"]! += replies.count - distinct.count
                if plans == 0 { counts["effects_lost"]! += 1 }
                // The record is "reply_to\nreply".
                let stored = records[r].bytes.flatMap { bytes in bytes.firstIndex(of: 10).map { Array(bytes[($0 + 1)...]) } }
                if stored != first { counts["reply_differs_from_state"]! += 1 }
            }
        }
        return counts.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }
    }
}
