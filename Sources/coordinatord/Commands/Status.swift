import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live daemons, queue depths, messages in flight, pending approvals, running plans, dead letters.")

    @OptionGroup var client: ClientOptions
    @OptionGroup var layout: LayoutOptions

    func run() throws {
        if layout.isCluster(url: client.url) {
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
    /// queue, in-flight list, outbox and index summed over the partitions (`StatusReport`, as
    /// the console's overview reads them): one pipeline per master per step, no SCAN.
    private func runOnCluster() throws {
        let (redis, count) = try client.cluster(partitions: layout.partitions)
        defer { redis.close() }
        let report = try StatusReport.read(redis, layout: StateLayout(keys: client.keys, partitions: count))
        let queues = StatusReport.partitionQueues
        let waiting = report.depths, inflight = report.inflight
        let pending = report.pendingApprovals, running = report.runningPlans, held = report.heldPlans, dead = report.deadLetters
        let daemons = report.daemons.map { $0.string("worker") ?? "" }
        let holding = Dictionary(report.daemons.map { ($0.string("worker") ?? "", $0.int("partitions") ?? 0) }) { a, _ in a }
        let heldCount = report.partitions?.held ?? 0
        if client.json {
            var queueObjects: [String: Any] = [:]
            for queue in queues { queueObjects[queue] = ["waiting": waiting[queue] ?? 0, "inflight": inflight[queue] ?? 0] }
            printJSONLine([
                "daemons": daemons.map { ["worker": $0, "partitions": holding[$0] ?? 0] as [String: Any] },
                "partitions": count, "partitions_held": heldCount,
                "queues": queueObjects, "approvals_pending": pending, "plans_running": running, "plans_held": held,
                "dead_letters": dead,
            ])
            return
        }
        let summary = daemons.isEmpty ? Terminal.paint("no live daemon", .red) : "\(daemons.count) live"
        Terminal.line("\(Terminal.paint("DAEMONS", .bold))  \(summary); \(heldCount) of \(count) partitions held")
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
