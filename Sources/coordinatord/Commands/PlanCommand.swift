import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "A plan and its steps, with statuses, errors and timings.")

    @OptionGroup var client: ClientOptions
    @OptionGroup var layout: LayoutOptions
    @Argument(help: "The plan id, or a unique prefix of it.") var id: String

    func validate() throws { try IDPrefix.validate(id, "ID") }

    func run() throws {
        try client.withState(layout) { redis, layout in
            let id = try IDPrefix.plan(id, layout: layout, redis: redis)
            // On a cluster the id's `<k>.` names the partition it is kept in.
            guard let bytes = try layout.of(id: id).flatMap({ try redis.call(RedisCommand("GET", $0.plan(id))).bytes }) else {
                let whole = layout.isPartitioned ? "; on a cluster give the whole id of a plan that is not running" : ""
                throw CommandFailure("no plan \"\(id)\" (finished plans are kept for --retention\(whole))")
            }
            guard let plan = jsonObject(bytes) else { throw CommandFailure("plan \(id) is stored in a form this command cannot read") }
            if client.json {
                printJSONLine(plan)
                return
            }
            let now = redis.clock()
            let status = plan.string("status") ?? "?"
            Terminal.line("\(Terminal.paint("plan", .bold)) \(shown(id))  \(Terminal.paint(shown(status), Terminal.colour(for: status)))")
            Terminal.line("recommendation \(shown(plan.string("recommendation_id") ?? "?")) of \(shown(plan.string("customer_id") ?? "?"))")
            var times: [String] = []
            if let created = plan.date("created_at") { times.append("created \(Timestamps.relative(created, now: now))") }
            if let started = plan.date("started_at") { times.append("started \(Timestamps.relative(started, now: now))") }
            if let ended = plan.date("completed_at") ?? plan.date("rolled_back_at") {
                times.append("ended \(Timestamps.relative(ended, now: now))")
            }
            if let total = plan.int("total_duration_ms"), total > 0 { times.append("took \(Timestamps.duration(ms: total))") }
            if !times.isEmpty { Terminal.line(times.joined(separator: ", ")) }
            if let reason = plan.string("rollback_reason") { Terminal.line("rolled back: \(shown(reason))") }
            if let reason = plan.string("cancel_reason") { Terminal.line("cancelled: \(shown(reason))") }
            Terminal.line()
            var table = Table([
                .init(title: "#", rightAligned: true), .init(title: "ACTION", flexible: true), .init(title: "AGENT", flexible: true),
                .init(title: "STATUS"), .init(title: "TOOK", rightAligned: true), .init(title: "ERROR", flexible: true, minimum: 10),
            ])
            table.colouring[3] = { Terminal.colour(for: $0) }
            for (index, step) in ((plan["steps"] as? [[String: Any]]) ?? []).enumerated() {
                var error = step.string("error") ?? ""
                if let rollback = step.string("rollback_error") { error += (error.isEmpty ? "" : "; ") + "rollback: \(rollback)" }
                let took = step.int("duration_ms").map { step["started_at"] == nil ? "" : Timestamps.duration(ms: $0) } ?? ""
                table.add(["\(index + 1)", step.string("action") ?? "", step.string("agent_id") ?? "",
                           step.string("status") ?? "", took, error])
            }
            table.print()
        }
    }
}
