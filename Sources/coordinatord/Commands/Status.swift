import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live daemons, queue depths, messages in flight, pending approvals, running plans, dead letters.")

    @OptionGroup var client: ClientOptions

    func run() throws {
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
