import ArgumentParser
import CoordinatorDaemon
import Foundation
import RedisClient

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live daemons, queue depths, messages in flight, pending approvals, running plans, dead letters.")

    @OptionGroup var client: ClientOptions

    static let queues = ["requests", "approvals", "steps:results", "plans:ready"]

    func run() throws {
        try answering {
            let connection = try client.connect()
            defer { connection.close() }
            let keys = client.keys
            let now = redisNow(connection)

            let live = try HealthCheck.liveWorkers(connection, keys: keys)
            let beats = try live.isEmpty ? [] : connection.pipeline(live.map { RedisCommand("HGETALL", keys.worker($0)) })
            var daemons: [[String: Any]] = []
            for (worker, reply) in zip(live, beats) {
                var fields: [String: Any] = ["worker": worker]
                let parts = reply.array ?? []
                var index = 0
                while index + 1 < parts.count {
                    if let name = parts[index].string, let value = parts[index + 1].string {
                        fields[name] = Int(value).map { $0 as Any } ?? value
                    }
                    index += 2
                }
                daemons.append(fields)
            }

            let depths = try connection.pipeline(Self.queues.map { RedisCommand("LLEN", keys.queue($0)) })
            let inflight = try inflightByQueue(connection, keys: keys)
            let counts = try connection.pipeline([
                RedisCommand("ZCARD", keys.pendingApprovals),
                RedisCommand("ZRANGE", keys.pendingApprovals, 0, 0, "WITHSCORES"),
                RedisCommand("ZCARD", keys.runningPlans),
                RedisCommand("LLEN", keys.dead),
            ])
            let pending = Int(counts[0].integer ?? 0)
            let next = (counts[1].array?.last?.string).flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) }
            let running = Int(counts[2].integer ?? 0)
            let dead = Int(counts[3].integer ?? 0)

            if client.json {
                var queues: [String: Any] = [:]
                for (queue, depth) in zip(Self.queues, depths) {
                    queues[queue] = ["waiting": Int(depth.integer ?? 0), "inflight": inflight[queue] ?? 0]
                }
                var object: [String: Any] = [
                    "daemons": daemons, "queues": queues, "approvals_pending": pending,
                    "plans_running": running, "dead_letters": dead,
                ]
                if let next { object["next_approval_expiry"] = ISO8601DateFormatter().string(from: next) }
                printJSONLine(object)
                return
            }

            Self.printDaemons(daemons, now: now)
            Terminal.line()
            var queues = Table([.init(title: "QUEUE"), .init(title: "WAITING", rightAligned: true),
                                .init(title: "IN FLIGHT", rightAligned: true)])
            for (queue, depth) in zip(Self.queues, depths) {
                queues.add([keys.queue(queue), "\(depth.integer ?? 0)", "\(inflight[queue] ?? 0)"])
            }
            queues.print()
            Terminal.line()
            let expiry = next.map { " (next expires \(Timestamps.relative($0, now: now)))" } ?? ""
            Terminal.line("pending approvals  \(pending)\(expiry)")
            Terminal.line("running plans      \(running)")
            Terminal.line("dead letters       \(dead == 0 ? "0" : Terminal.paint("\(dead)", .red))")
        }
    }

    /// The DAEMONS line and, when any is live, their table.
    private static func printDaemons(_ daemons: [[String: Any]], now: Date) {
        let summary = daemons.isEmpty ? Terminal.paint("no live daemon", .red) : "\(daemons.count) live"
        Terminal.line("\(Terminal.paint("DAEMONS", .bold))  \(summary)")
        guard !daemons.isEmpty else { return }
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

    /// Messages in every live or lapsed worker's in-flight lists, by queue, from the registry
    /// each worker keeps of them (`<prefix>:inflight-lists:<worker>`: list -> queue); no SCAN.
    private func inflightByQueue(_ connection: RedisConnection, keys: Keys) throws -> [String: Int] {
        let workers = (try connection.send("SMEMBERS", keys.workerIndex).array ?? []).compactMap(\.string)
        guard !workers.isEmpty else { return [:] }
        let registries = try connection.pipeline(workers.map { RedisCommand("HGETALL", keys.inflightLists(worker: $0)) })
        var lists: [(list: String, queue: String)] = []
        for registry in registries {
            let fields = (registry.array ?? []).compactMap(\.string)
            var index = 0
            while index + 1 < fields.count {
                lists.append((fields[index], keys.queueName(fields[index + 1])))
                index += 2
            }
        }
        guard !lists.isEmpty else { return [:] }
        let lengths = try connection.pipeline(lists.map { RedisCommand("LLEN", $0.list) })
        var result: [String: Int] = [:]
        for (entry, length) in zip(lists, lengths) {
            result[entry.queue, default: 0] += Int(length.integer ?? 0)
        }
        return result
    }
}
