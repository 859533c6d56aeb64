import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Approvals: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pending approvals: id, customer, recommendation, risk, requested by, expires in.",
        discussion: "IDs are shown by their first 8 characters; approve, reject and plan take any unique prefix (--json shows them whole).")

    @OptionGroup var client: ClientOptions
    @OptionGroup var layout: LayoutOptions
    @Option(help: "Only this customer's approvals.") var customer: String?
    @Option(help: "Show at most this many, soonest expiry first.") var limit: Int = 200

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit: must be positive") }
    }

    func run() throws {
        try client.withState(layout) { redis, layout in
            let pending = try PendingApprovals.read(redis, layout: layout, customer: customer, limit: limit)
            let now = pending.now, total = pending.total, approvals = pending.approvals
            if client.json {
                for approval in approvals { printJSONLine(approval) }
                return
            }
            guard !approvals.isEmpty else {
                Terminal.line(customer.map { "no pending approvals for \(shown($0))" } ?? "no pending approvals")
                return
            }
            var table = Table([
                .init(title: "ID"), .init(title: "CUSTOMER", flexible: true), .init(title: "RECOMMENDATION", flexible: true),
                .init(title: "RISK"), .init(title: "REQUESTED BY", flexible: true), .init(title: "EXPIRES"),
            ])
            table.colouring[3] = { Terminal.colour(for: String($0.prefix { $0 != " " })) }
            for approval in approvals {
                let risk = PendingApprovals.riskText(approval)
                table.add([
                    String((approval.string("id") ?? "").prefix(8)), approval.string("customer_id") ?? "",
                    approval.string("recommendation_id") ?? "", risk, approval.string("requested_by") ?? "",
                    approval.date("expires_at").map { Timestamps.relative($0, now: now) } ?? "",
                ])
            }
            table.print()
            if total > approvals.count {
                Terminal.line("… and \(total - approvals.count) more (--limit)")
            }
        }
    }
}

/// Resolves what a person typed (a whole id or a unique prefix) to an id.
enum IDPrefix {
    /// Identifiers the daemon generates are UUIDs; anything that long is taken as typed.
    static let fullLength = 36

    static func validate(_ text: String, _ what: String) throws {
        guard !text.isEmpty, text.utf8.count <= 128,
              text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"{}*?[]\\\"".utf8.contains($0) }) else {
            throw ValidationError("\(what): 1–128 printable ASCII characters, without spaces or { } * ? [ ] \\ \"")
        }
    }

    /// A pending approval's id from a prefix of it (every partition's, on a cluster).
    static func approval(_ text: String, layout: StateLayout, redis: any StateRedis) throws -> String {
        if text.count >= fullLength { return text }
        let ids = try PendingApprovals.ids(redis, layout: layout)
        if ids.contains(text) { return text }
        return try unique(ids.filter { $0.hasPrefix(text) }, text, "pending approval")
    }

    /// A plan's id from a prefix of it. On one Redis, a SCAN of the plan keys (for people, not
    /// for scripts); on a cluster, the running and held plans of every partition (no SCAN):
    /// a finished plan needs its whole id there.
    static func plan(_ text: String, layout: StateLayout, redis: any StateRedis) throws -> String {
        if text.count >= fullLength { return text }
        guard let connection = redis as? RedisConnection else {
            let ids = try redis.everyPlace(layout) { RedisCommand("ZRANGE", $0.runningPlans, 0, -1) }
                + redis.everyPlace(layout) { RedisCommand("ZRANGE", $0.heldPlans, 0, -1) }
            let matching = Set(ids.flatMap { ($0.array ?? []).compactMap(\.string) }.filter { $0.hasPrefix(text) })
            if matching.isEmpty, !text.isEmpty { return text }
            return try unique(matching.sorted(), text, "running or held plan")
        }
        let keys = layout.keys
        let head = keys.planKeyHead, tail = keys.planKeyTail
        var ids: [String] = []
        var cursor = "0"
        repeat {
            let page = try connection.send("SCAN", cursor, "MATCH", "\(head)\(text)*\(tail)", "COUNT", 1000).array ?? []
            cursor = page.first?.string ?? "0"
            for key in (page.count > 1 ? page[1].array ?? [] : []).compactMap(\.string) where key.hasSuffix(tail) {
                // The plan's own key, not one of its companions (`…}:queued`, `…}:lease`).
                ids.append(String(key.dropFirst(head.count).dropLast(tail.count)))
            }
        } while cursor != "0"
        if ids.contains(text) { return text }
        return try unique(ids, text, "plan")
    }

    private static func unique(_ matches: [String], _ text: String, _ what: String) throws -> String {
        switch matches.count {
        case 1: return matches[0]
        case 0: throw CommandFailure("no \(what) with an id starting \"\(text)\"")
        default: throw CommandFailure("\"\(text)\" is ambiguous: \(matches.count) \(what)s start with it (\(matches.prefix(3).joined(separator: ", "))…); give more of the id")
        }
    }
}
