import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live daemons, queue depths, messages in flight, pending approvals, running plans, dead letters.")

    @OptionGroup var client: ClientOptions
    @Flag(help: "The daemon runs on a Redis Cluster: sum the partitions (a redis+cluster:// URL implies it; env COORD_CLUSTER=1).") var cluster = false
    @Option(help: "On a cluster: the daemons' --partitions (env COORD_PARTITIONS).") var partitions: Int?

    func run() throws {
        if cluster || client.url.hasPrefix("redis+cluster://") || Environment.value("COORD_CLUSTER") == "1" {
            try answering { try runOnCluster() }
            return
        }
        try answering {
            let connection = try client.connect()
            defer { connection.close() }
            let keys = client.keys
            let report = try StatusReport.read(connection, keys: keys)
            let now = report.now, daemons = report.daemons, inflight = report.inflight
            let pending = report.pendingApprovals, next = report.nextApprovalExpiry
            let running = report.runningPlans, dead = report.deadLetters

            if client.json {
                var queues: [String: Any] = [:]
                for queue in StatusReport.queues {
                    queues[queue] = ["waiting": report.depths[queue] ?? 0, "inflight": inflight[queue] ?? 0]
                }
                var object: [String: Any] = [
                    "daemons": daemons, "queues": queues, "approvals_pending": pending,
                    "plans_running": running, "dead_letters": dead,
                ]
                if let next { object["next_approval_expiry"] = ISO8601DateFormatter().string(from: next) }
                printJSONLine(object)
                return
            }

            let summary = daemons.isEmpty ? Terminal.paint("no live daemon", .red) : "\(daemons.count) live"
            Terminal.line("\(Terminal.paint("DAEMONS", .bold))  \(summary)")
            if !daemons.isEmpty {
                var table = Table([
                    .init(title: "WORKER", flexible: true, minimum: 12), .init(title: "PID", rightAligned: true),
                    .init(title: "VERSION"), .init(title: "UP"), .init(title: "PROCESSED", rightAligned: true),
                    .init(title: "DEAD", rightAligned: true), .init(title: "LAST BEAT"),
                ])
                for daemon in daemons {
                    let started = daemon.date("started_at")
                    let beat = daemon.date("beat_at")
                    table.add([
                        daemon.string("worker") ?? "", "\(daemon["pid"] ?? "")", daemon.string("version") ?? "",
                        started.map { Timestamps.span(now.timeIntervalSince($0)) } ?? "",
                        "\(daemon["processed"] ?? 0)", "\(daemon["dead_lettered"] ?? 0)",
                        beat.map { Timestamps.relative($0, now: now) } ?? "",
                    ])
                }
                table.print()
            }
            Terminal.line()
            var queues = Table([.init(title: "QUEUE"), .init(title: "WAITING", rightAligned: true),
                                .init(title: "IN FLIGHT", rightAligned: true)])
            for queue in StatusReport.queues {
                queues.add([keys.queue(queue), "\(report.depths[queue] ?? 0)", "\(inflight[queue] ?? 0)"])
            }
            queues.print()
            Terminal.line()
            let expiry = next.map { " (next expires \(Timestamps.relative($0, now: now)))" } ?? ""
            Terminal.line("pending approvals  \(pending)\(expiry)")
            Terminal.line("running plans      \(running)")
            Terminal.line("dead letters       \(dead == 0 ? "0" : Terminal.paint("\(dead)", .red))")
        }
    }
}

// MARK: - On a Redis Cluster (PROTOCOL.md section 11)

extension Status {
    /// The daemons registered in `<prefix>:daemons` with the partitions each holds, and every
    /// queue, in-flight list, outbox and index summed over the partitions: one pipeline per
    /// master per step, no SCAN.
    private func runOnCluster() throws {
        let (redis, count) = try client.cluster(partitions: partitions)
        defer { redis.close() }
        let keys = client.keys
        let parts = (0..<count).map { keys.partition($0) }
        let daemons = try HealthCheck.liveDaemons(redis, keys: keys)
        let owners = try redis.pipelinePerMaster(parts.map { RedisCommand("GET", $0.partitionLease) }).map(\.string)
        let queues = StatusReport.queues + ["outbox"]
        var waiting: [String: Int] = [:]
        // The entry queues, then each partition's queues.
        let entry = try redis.pipelinePerMaster(["requests", "approvals", "steps:results"].map { RedisCommand("LLEN", keys.queue($0)) })
        for (queue, depth) in zip(["requests", "approvals", "steps:results"], entry) { waiting[queue, default: 0] += Int(depth.integer ?? 0) }
        var commands: [RedisCommand] = []
        for part in parts {
            commands += queues.map { RedisCommand("LLEN", $0 == "outbox" ? part.outbox : part.queue($0)) }
            commands += [RedisCommand("ZCARD", part.pendingApprovals), RedisCommand("ZCARD", part.runningPlans),
                         RedisCommand("ZCARD", part.heldPlans), RedisCommand("LLEN", part.dead),
                         RedisCommand("SMEMBERS", part.workerIndex)]
        }
        let replies = try redis.pipelinePerMaster(commands)
        let per = queues.count + 5
        var pending = 0, running = 0, held = 0, dead = 0
        var registries: [RedisCommand] = []
        for (k, part) in parts.enumerated() {
            let r = Array(replies[(k * per)..<((k + 1) * per)])
            for (i, queue) in queues.enumerated() { waiting[queue, default: 0] += Int(r[i].integer ?? 0) }
            pending += Int(r[queues.count].integer ?? 0)
            running += Int(r[queues.count + 1].integer ?? 0)
            held += Int(r[queues.count + 2].integer ?? 0)
            dead += Int(r[queues.count + 3].integer ?? 0)
            for worker in (r[queues.count + 4].array ?? []).compactMap(\.string) {
                registries.append(RedisCommand("HGETALL", part.inflightLists(worker: worker)))
            }
        }
        // In flight: every partition worker's lists, by the queue each hands back to.
        var lists: [(list: String, queue: String)] = []
        for registry in try redis.pipelinePerMaster(registries) {
            let fields = (registry.array ?? []).compactMap(\.string)
            var i = 0
            while i + 1 < fields.count {
                let queue = fields[i + 1].split(separator: ":").last.map(String.init) ?? fields[i + 1]
                lists.append((fields[i], fields[i + 1].hasSuffix(":steps:results") ? "steps:results" : queue))
                i += 2
            }
        }
        var inflight: [String: Int] = [:]
        let lengths = try redis.pipelinePerMaster(lists.map { RedisCommand("LLEN", $0.list) })
        for (entry, length) in zip(lists, lengths) { inflight[entry.queue, default: 0] += Int(length.integer ?? 0) }
        var holding: [String: Int] = [:]
        for owner in owners.compactMap({ $0 }) { holding[owner, default: 0] += 1 }

        if client.json {
            var queueObjects: [String: Any] = [:]
            for queue in queues { queueObjects[queue] = ["waiting": waiting[queue] ?? 0, "inflight": inflight[queue] ?? 0] }
            printJSONLine([
                "daemons": daemons.map { ["worker": $0, "partitions": holding[$0] ?? 0] as [String: Any] },
                "partitions": count, "partitions_held": owners.compactMap { $0 }.count,
                "queues": queueObjects, "approvals_pending": pending, "plans_running": running, "plans_held": held,
                "dead_letters": dead,
            ])
            return
        }
        let summary = daemons.isEmpty ? Terminal.paint("no live daemon", .red) : "\(daemons.count) live"
        Terminal.line("\(Terminal.paint("DAEMONS", .bold))  \(summary); \(owners.compactMap { $0 }.count) of \(count) partitions held")
        if !daemons.isEmpty {
            var table = Table([.init(title: "WORKER", flexible: true, minimum: 12), .init(title: "PARTITIONS", rightAligned: true)])
            for daemon in daemons { table.add([shown(daemon), "\(holding[daemon] ?? 0)"]) }
            table.print()
        }
        Terminal.line()
        var table = Table([.init(title: "QUEUE (all partitions)"), .init(title: "WAITING", rightAligned: true),
                           .init(title: "IN FLIGHT", rightAligned: true)])
        for queue in queues { table.add([queue, "\(waiting[queue] ?? 0)", "\(inflight[queue] ?? 0)"]) }
        table.print()
        Terminal.line()
        Terminal.line("pending approvals  \(pending)")
        Terminal.line("running plans      \(running)")
        Terminal.line("dead letters       \(dead == 0 ? "0" : Terminal.paint("\(dead)", .red))")
    }
}
