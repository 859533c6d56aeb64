import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// `--executor agents` on a real 3-master Redis Cluster (PROTOCOL.md sections 5 and 11): the
/// commit that starts a step writes it into its partition's step outbox, and the daemon moves
/// it to `coord:agent:<id>:steps`; the test is the agent (it pops that list and pushes results
/// to `coord:steps:results`, unsigned, as the single-Redis agent tests do).
extension RealRedis {
    @Suite("Agents executor on a Redis Cluster", .sharesMachine)
    struct ClusterAgentsTests {
        static let partitions = 8
        static let agent = "cluster-agent"
        static let stepList = "coord:agent:\(agent):steps"
        static let root = Keys(prefix: "coord")

        static func partition(_ customer: String) -> Int {
            Int(RedisClusterSlot.crc16(Array(customer.utf8))) % partitions
        }

        static func configuration(_ url: String) -> DaemonConfiguration {
            var config = DaemonConfiguration()
            config.redisURL = url
            config.partitions = partitions
            config.executor = .agents
            config.stepTimeout = 60
            config.heartbeatTTL = 2
            config.planLease = 2
            return config
        }

        /// A result for a step message, echoing `attempt` and `rollback` (PROTOCOL.md section 5).
        static func result(for step: [String: Any], ok: Bool) -> String {
            var object: [String: Any] = ["plan_id": step["plan_id"] ?? "", "step_id": step["step_id"] ?? "", "ok": ok,
                                         "rollback": step["rollback"] ?? false, "attempt": step["attempt"] ?? ""]
            if ok {
                object["result"] = [:] as [String: Any]
                object["rollback_data"] = ["by": "\(step["step_id"] ?? "")"]
            } else {
                object["error"] = "agent says no"
            }
            return Wire.json(object)
        }

        /// The stored plan, read from its partition (`<k>.` of its id).
        static func plan(_ client: RedisClusterClient, _ id: String) throws -> [String: Any]? {
            let k = try #require(Partitions(count: partitions).of(id: id))
            guard let bytes = try client.send("GET", root.partition(k).plan(id)).bytes else { return nil }
            return try Harness.object(bytes)
        }

        /// Proof that partition `k`'s step mover has handled every entry its step outbox (and
        /// its sending list) held before now, for a check that a delivery added nothing: a
        /// marker entry pushed behind them, for a list in the agent list's slot (its name is
        /// the hash tag; no mark), must arrive. The mover takes entries oldest first, finishes
        /// what its sending list holds before taking more, and delivers a batch in order with
        /// one pipeline per master, so the marker lands after every entry before it was tried.
        static func awaitMarker(_ client: RedisClusterClient, partition k: Int) throws {
            let token = "marker-\(UUID().uuidString)"
            let list = "{\(stepList)}:\(token)"
            _ = try client.send("LPUSH", root.partition(k).stepOutbox, Array("+\(list)\n\(token)\n\(token)".utf8))
            let marker = try #require(try client.blockingPop([list], timeout: 30), "the marker through partition \(k)'s step outbox")
            #expect(marker.value == Array(token.utf8))
        }

        /// Starts one `migrate_to_spot` plan (three steps; the second critical) per customer;
        /// their plan ids.
        static func startPlans(_ client: RedisClusterClient, customers: [String]) throws -> [String: String] {
            for (c, customer) in customers.enumerated() {
                _ = try client.send("LPUSH", "coord:requests", Wire.coordinate(
                    "agents-\(c)", customer: customer, replyTo: "replies:\(customer)", executeNow: true,
                    [Wire.recommendation("spot-\(c)", agent: agent, action: "migrate_to_spot", resources: ["i-\(c)"])]))
            }
            var plans: [String: String] = [:]
            for customer in customers {
                let reply = try Harness.object(try #require(try client.blockingPop(["replies:\(customer)"], timeout: 60),
                                                            "no reply for \(customer)").value)
                let result = try #require(reply["result"] as? [String: Any], "\(reply)")
                plans[customer] = try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String, "\(reply)")
            }
            return plans
        }

        @Test("plans of customers in several partitions run on the test's agent; a failed critical step rolls back")
        func plansComplete() throws {
            let cluster = try RedisCluster.start(masters: 3)
            defer { cluster.stop() }
            let daemon = try Daemon(configuration: Self.configuration(cluster.url), logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }

            let customers = (0..<6).map { "agents-cust-\($0)" }
            let touched = Set(customers.map(Self.partition))
            #expect(touched.count >= 3, "the customers cover several partitions: \(touched)")
            let plans = try Self.startPlans(client, customers: customers)
            for (customer, id) in plans { #expect(id.hasPrefix("\(Self.partition(customer)).")) }
            let failing = plans[customers[0]]!

            // The agent: every step message has the single-Redis shape; the failing customer's
            // migrate_workload fails; everything else succeeds.
            var steps: [[UInt8]] = []
            var finished = Set<String>()
            let deadline = Date().addingTimeInterval(90)
            while finished.count < plans.count, Date() < deadline {
                // migrate_to_spot's validate_quality is the application agent's: two lists, two slots.
                var popped: [UInt8]?
                for list in [Self.stepList, "coord:agent:application-agent:steps"] where popped == nil {
                    popped = try client.send("RPOP", list).bytes
                }
                guard let raw = popped else {
                    Thread.sleep(forTimeInterval: 0.01)
                    for id in Set(plans.values).subtracting(finished) {
                        if let status = try Self.plan(client, id)?["status"] as? String,
                           ["completed", "rolled_back", "failed"].contains(status) { finished.insert(id) }
                    }
                    continue
                }
                steps.append(raw)
                let step = try Harness.object(raw)
                var expected: Set<String> = ["plan_id", "step_id", "step_index", "action", "parameters", "rollback", "deadline", "attempt"]
                if step["rollback"] as? Bool == true { expected.insert("rollback_data") }
                #expect(Set(step.keys) == expected, "\(step)")
                let fail = step["plan_id"] as? String == failing && step["action"] as? String == "migrate_workload"
                _ = try client.send("LPUSH", "coord:steps:results", Self.result(for: step, ok: !fail))
            }
            for (customer, id) in plans {
                let plan = try #require(try Self.plan(client, id), "plan \(id)")
                let statuses = (plan["steps"] as? [[String: Any]] ?? []).map { $0["status"] as? String ?? "?" }
                if id == failing {
                    #expect(plan["status"] as? String == "rolled_back", "\(customer): \(plan)")
                    #expect(statuses == ["rolled_back", "failed", "pending"], "\(statuses)")
                } else {
                    #expect(plan["status"] as? String == "completed", "\(customer): \(plan)")
                    #expect(statuses.allSatisfy { $0 == "completed" }, "\(statuses): \(plan["steps"] ?? "")")
                }
            }
            // 5 plans × 3 steps, and the failing one's 2 steps and 1 rollback: each delivered once.
            #expect(steps.count == 5 * 3 + 3, "\(steps.count) step messages")
            #expect(Set(steps).count == steps.count, "a step message was delivered twice")
            let rollbacks = try steps.map(Harness.object).filter { $0["rollback"] as? Bool == true }
            #expect(rollbacks.count == 1 && rollbacks.first?["plan_id"] as? String == failing)
            #expect((rollbacks.first?["rollback_data"] as? [String: Any])?["by"] != nil, "\(rollbacks)")

            // Nothing waits in a step outbox; no agent list inside a partition; no dead letter.
            var lengths: [RedisCommand] = []
            for k in 0..<Self.partitions {
                let part = Self.root.partition(k)
                lengths += [RedisCommand("LLEN", part.stepOutbox), RedisCommand("LLEN", part.agentSteps(Self.agent)),
                            RedisCommand("LLEN", part.dead), RedisCommand("LLEN", part.stepResults)]
            }
            let drained = Date().addingTimeInterval(10)
            var total = 1
            while total > 0, Date() < drained {
                // An error reply counts as waiting: it is no proof of an empty list.
                total = try client.pipelinePerMaster(lengths).reduce(0) { $0 + Int($1.integer ?? 1) }
                if total > 0 { Thread.sleep(forTimeInterval: 0.05) }
            }
            #expect(total == 0, "step outboxes, partition agent lists, results and dead letters are empty")

            // A delivery repeated after a crash (the entry back in its outbox, byte for byte)
            // finds its mark in the agent list's slot and adds nothing.
            let first = try Harness.object(steps[0])
            let k = try #require(Partitions(count: Self.partitions).of(id: first["plan_id"] as? String ?? ""))
            let token = try #require(first["attempt"] as? String)
            let mark = try #require(Self.root.stepSent(list: Self.stepList, token: token))
            #expect(RedisClusterSlot.of(mark) == RedisClusterSlot.of(Self.stepList))
            #expect(try client.send("EXISTS", mark).integer == 1, "the delivery left its mark")
            let entry = Array("+\(Self.stepList)\n\(token)\n".utf8) + steps[0]
            _ = try client.send("LPUSH", Self.root.partition(k).stepOutbox, entry)
            try Self.awaitMarker(client, partition: k)
            #expect(try client.send("LLEN", Self.root.partition(k).stepOutbox).integer == 0, "the entry was moved")
            #expect(try client.send("LLEN", Self.stepList).integer == 0, "a repeated delivery reached the agent")
        }

        @Test("a step past its deadline is withdrawn from the agent's list through the step outbox; the plan fails it")
        func timedOutStepWithdrawn() throws {
            let cluster = try RedisCluster.start(masters: 3)
            defer { cluster.stop() }
            var config = Self.configuration(cluster.url)
            config.stepTimeout = 2
            let daemon = try Daemon(configuration: config, logger: Harness.quietLogger)
            daemon.start()
            defer { daemon.stop() }
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }

            let plans = try Self.startPlans(client, customers: ["agents-late"])
            let id = try #require(plans["agents-late"])
            // The step arrives; nobody takes it. At its deadline the daemon withdraws it and
            // fails the step (take_snapshot is critical: nothing to roll back, the plan ends).
            let arrived = Date().addingTimeInterval(30)
            while try client.send("LLEN", Self.stepList).integer == 0, Date() < arrived { Thread.sleep(forTimeInterval: 0.02) }
            #expect(try client.send("LLEN", Self.stepList).integer == 1, "the first step was delivered")
            let ended = Date().addingTimeInterval(30)
            var status: String?
            while Date() < ended {
                status = try Self.plan(client, id)?["status"] as? String
                if status == "rolled_back" || status == "failed" { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(status == "rolled_back" || status == "failed", "plan \(id): \(status ?? "nil")")
            let withdrawn = Date().addingTimeInterval(10)
            while try client.send("LLEN", Self.stepList).integer != 0, Date() < withdrawn { Thread.sleep(forTimeInterval: 0.02) }
            #expect(try client.send("LLEN", Self.stepList).integer == 0, "the late step was withdrawn")
        }

        @Test("a daemon SIGKILLed after a step's commit, before its delivery: the next holder delivers the step once")
        func killedBeforeDelivery() throws {
            // Replicas to hold the step mover at its WAIT (`--min-replicas-acked 1`) while they are stopped.
            let cluster = try RedisCluster.start(masters: 3, replicasPerMaster: 1)
            defer { cluster.stop() }
            let client = RedisClusterClient(configuration: cluster.configuration)
            defer { client.close() }
            func launch() throws -> Process {
                let process = Process()
                process.executableURL = Harness.binary
                process.arguments = ["run", "--cluster", "--partitions", "\(Self.partitions)", "--heartbeat-ttl", "2",
                                     "--plan-lease", "60", "--executor", "agents", "--step-timeout", "60",
                                     "--min-replicas-acked", "1"]
                process.environment = ChildProcess.environment(["REDIS_URL": cluster.url])
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try ChildProcess.run(process)
                return process
            }
            let customer = "agents-killed"
            let k = Self.partition(customer)
            let part = Self.root.partition(k)
            let first = try launch()
            defer { _ = ChildProcess.stop(first, signal: SIGKILL) }
            var owner: String?
            let held = Date().addingTimeInterval(30)
            while owner == nil, Date() < held {
                owner = try client.send("GET", part.partitionLease).string
                if owner == nil { Thread.sleep(forTimeInterval: 0.05) }
            }
            let worker = try #require(owner, "partition \(k) is held")
            let sending = part.stepOutboxSending(worker: "\(worker)-p\(k)")
            // Wait until the partition's loops run (their heartbeat), then stop every replica.
            let running = Date().addingTimeInterval(30)
            while try client.send("EXISTS", part.worker("\(worker)-p\(k)")).integer != 1, Date() < running {
                Thread.sleep(forTimeInterval: 0.05)
            }
            var replicaPids: [Int32] = []
            for master in try cluster.masterPorts() {
                for port in cluster.replicaPorts(of: master) {
                    let connection = try cluster.direct(port)
                    defer { connection.close() }
                    let info = try connection.send("INFO", "server").string ?? ""
                    let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                    replicaPids.append(try #require(line.flatMap { Int32($0.dropFirst("process_id:".count)) }))
                }
            }
            for pid in replicaPids { kill(pid, SIGSTOP) }
            var resumed = false
            defer { if !resumed { for pid in replicaPids { kill(pid, SIGCONT) } } }

            // Straight onto the partition's queue (ingress would wait for the replicas too).
            _ = try client.send("LPUSH", part.requests, Wire.coordinate(
                "killed-0", customer: customer, replyTo: "replies:\(customer)", executeNow: true,
                [Wire.recommendation("spot-killed", agent: Self.agent, action: "migrate_to_spot", resources: ["i-k"])]))
            // The step is committed and taken into the mover's sending list, where WAIT holds it.
            let taken = Date().addingTimeInterval(30)
            while try client.send("LLEN", sending).integer != 1, Date() < taken { Thread.sleep(forTimeInterval: 0.02) }
            let entry = try #require(try client.send("LINDEX", sending, 0).bytes, "the step waits in \(sending)")
            #expect(try client.send("LLEN", Self.stepList).integer == 0, "not delivered while no replica acknowledges")
            kill(first.processIdentifier, SIGKILL)
            _ = ChildProcess.waitForExit(first, timeout: 10)
            for pid in replicaPids { kill(pid, SIGCONT) }
            resumed = true

            // Another daemon takes the partition over, hands the dead worker's sending list back
            // and delivers the step: once, byte for byte the message committed.
            let second = try launch()
            defer { _ = ChildProcess.stop(second, timeout: 10) }
            let delivered = Date().addingTimeInterval(40)
            while try client.send("LLEN", Self.stepList).integer == 0, Date() < delivered { Thread.sleep(forTimeInterval: 0.05) }
            // No second delivery: everything before a marker through the partition's step
            // outbox was tried by the time it arrives (the recovered entry came back that way).
            try Self.awaitMarker(client, partition: k)
            let steps = (try client.send("LRANGE", Self.stepList, 0, -1).array ?? []).compactMap(\.bytes)
            let parsed = try #require(StepOutbox.parse(entry))
            #expect(steps == [parsed.message], "\(steps.count) step messages on the agent's list")
            #expect(try client.send("LLEN", sending).integer == 0, "the dead worker's sending list was handed back")
            let step = try Harness.object(try #require(steps.first))
            #expect(step["action"] as? String == "take_snapshot" && step["step_index"] as? Int == 0, "\(step)")
        }

        @Test("agents through a failover of their step list's master, --min-replicas-acked 1: every plan completes, once")
        func agentsThroughFailover() throws {
            // hz 100: a blocked WAIT or pop is served within 10 ms of its time.
            let cluster = try RedisCluster.start(masters: 3, replicasPerMaster: 1, arguments: ["--hz", "100"])
            defer { cluster.stop() }
            var config = Self.configuration(cluster.url)
            config.minReplicasAcked = 1
            // The default lease, longer than a failover (about 3 s): the plans of the dead master's
            // partitions continue on the new one (the lanes resume what they leased).
            config.planLease = 10
            let log = LogRecorder()
            let daemon = try Daemon(configuration: config, logger: log.logger(level: .info))
            daemon.start()
            defer { daemon.stop() }
            var options = RedisClusterClient.Options()
            options.retryTimeout = 30
            let client = RedisClusterClient(configuration: cluster.configuration, options: options)
            defer { client.close() }

            let customers = (0..<24).map { "agents-fo-\($0)" }
            let plans = try Self.startPlans(client, customers: customers)
            #expect(plans.count == customers.count)
            // The agent's step list's master dies after a third of the steps: steps delivered
            // there, results pushed, pops made, and the mover's pushes in flight meet the kill.
            let victim = try cluster.masterPort(forSlot: RedisClusterSlot.of(Self.stepList))
            var killed: Date?
            var answered = 0
            var steps: [String: Int] = [:]
            var finished: [String: String] = [:]
            let deadline = Date().addingTimeInterval(120)
            while finished.count < plans.count, Date() < deadline {
                if killed == nil, answered >= plans.count {
                    killed = Date()
                    cluster.server(port: victim)!.kill()
                }
                // The two agents' lists are in two slots: popped one at a time.
                var popped: [UInt8]?
                for list in [Self.stepList, "coord:agent:application-agent:steps"] where popped == nil {
                    popped = try client.send("RPOP", list).bytes
                }
                guard let popped else {
                    Thread.sleep(forTimeInterval: 0.01)
                    for id in Set(plans.values).subtracting(finished.keys) {
                        if let status = try Self.plan(client, id)?["status"] as? String,
                           ["completed", "rolled_back", "failed"].contains(status) { finished[id] = status }
                    }
                    continue
                }
                let step = try Harness.object(popped)
                steps["\(step["step_id"] ?? "")/\(step["attempt"] ?? "")", default: 0] += 1
                let results = "coord:steps:results"
                _ = try client.send("LPUSH", results, Self.result(for: step, ok: true))
                // An agent that must not lose a result waits for it to reach a replica.
                _ = try client.send(RedisCommand("WAIT", 1, 5_000), slot: RedisClusterSlot.of(results))
                answered += 1
            }
            #expect(killed != nil, "the master was killed (\(answered) steps answered)")
            let unfinished = Set(plans.values).subtracting(finished.keys)
            if !unfinished.isEmpty {
                let lines = log.lines.map { line in "\(line.message) \(line.metadata)" }.suffix(40)
                Issue.record("\(unfinished.count) plans unfinished: \(cluster.whereIs(Array(unfinished.prefix(3)))); the daemon's log: \(lines.joined(separator: " | "))")
            }
            #expect(finished.values.allSatisfy { $0 == "completed" }, "\(finished.filter { $0.value != "completed" })")
            // A step may reach the agent twice (a pop the failover undid): the same attempt, whose
            // second result the daemon refuses. Never a second attempt of a step that succeeded.
            let byStep = Dictionary(grouping: steps.keys) { $0.split(separator: "/").first.map(String.init) ?? "" }
                .filter { $0.value.count > 1 }
            #expect(byStep.isEmpty, "a step was attempted twice: \(byStep)")
            var completed: [String: Int] = [:]
            for k in 0..<Self.partitions {
                for entry in try client.send("XRANGE", Self.root.partition(k).eventStream, "-", "+").array ?? [] {
                    let event = try Harness.streamEntry(entry).event
                    if event["type"] as? String == "plan.completed", let id = event["plan_id"] as? String { completed[id, default: 0] += 1 }
                }
            }
            #expect(completed.count == plans.count && completed.values.allSatisfy { $0 == 1 }, "\(completed)")
            print("cluster agents failover: master :\(victim) SIGKILLed after \(plans.count) of \(plans.count * 3) steps answered; "
                  + "\(steps.values.reduce(0, +)) step messages, \(steps.values.filter { $0 > 1 }.count) repeated; all plans completed "
                  + String(format: "%.2f s after the kill", Date().timeIntervalSince(killed ?? Date())))
        }
    }
}
