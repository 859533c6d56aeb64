import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Events from <prefix>:events:stream: the last ones, those after --since, and with --follow new ones as they come.",
        discussion: "Each line starts with the event's stream id, which --since takes. --follow survives a Redis restart: it reconnects with backoff and resumes after the last event it read.")

    @OptionGroup var client: ClientOptions
    @Flag(help: "Keep printing new events until interrupted.") var follow = false
    @Option(help: "Only events after this stream id (as printed first on each line).") var since: String?
    @Option(help: "Only events of this type (e.g. plan.completed), or of a family with a trailing dot (plan.).") var type: String?
    @Option(help: "Only this customer's events.") var customer: String?
    @Option(help: "Without --since: how many of the latest events to show.") var count: Int = 50
    @OptionGroup var layout: LayoutOptions

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count: must be positive") }
        if let since, !StreamEvent.isStreamID(since) { throw ValidationError("--since: a stream id like 1764583200123-0") }
    }

    private typealias Entry = StreamEvent

    func run() throws {
        if isCluster {
            try answering { try runOnCluster() }
            return
        }
        try answering {
            let connection = try client.connect()
            defer { connection.close() }
            let stream = client.keys.eventStream
            var last: String
            if let since {
                last = since
                try readAfter(connection, stream: stream, last: &last)
            } else {
                // The newest entry is read first: an event written while the latest are read is
                // then either among them or after it, never between the two reads.
                let newest = try connection.send("XREVRANGE", stream, "+", "-", "COUNT", 1).array?.first?.array?.first?.string
                let latest = try latest(connection, stream: stream)
                latest.forEach(show)
                // With nothing matched, follow from that newest entry (or the start of an empty stream).
                last = latest.last?.id ?? newest ?? "0-0"
            }
            guard follow else { return }
            try followStream(connection, stream: stream, after: last)
        }
    }

    /// The latest `count` matching events, oldest first: read backwards a page at a time.
    private func latest(_ connection: RedisConnection, stream: String) throws -> [Entry] {
        var found: [Entry] = []
        var end = "+"
        while found.count < count {
            let page = try Self.entries(connection.send("XREVRANGE", stream, end, "-", "COUNT", 1000))
            guard let oldest = page.last else { break }
            found += page.filter { matches($0.event) }
            end = "(" + oldest.id
            if page.count < 1000 { break }
        }
        return Array(found.prefix(count).reversed())
    }

    private func readAfter(_ connection: RedisConnection, stream: String, last: inout String) throws {
        while true {
            let page = try Self.entries(connection.send("XRANGE", stream, "(" + last, "+", "COUNT", 1000))
            for entry in page where matches(entry.event) { show(entry) }
            guard let newest = page.last else { return }
            last = newest.id
        }
    }

    /// XREAD BLOCK from `after`; on a Redis error, retries with backoff (the connection
    /// reconnects by itself) and resumes after the last entry read.
    private func followStream(_ connection: RedisConnection, stream: String, after: String) throws -> Never {
        var last = after
        var backoff = Backoff(first: 0.2, max: 5)
        var down = false
        while true {
            do {
                let reply = try connection.send("XREAD", "COUNT", 1000, "BLOCK", 2000, "STREAMS", stream, last)
                if down {
                    Terminal.note("events: Redis is back; resuming after \(last)")
                    down = false
                    backoff.reset()
                }
                // [[stream, [entries]]] or nil on timeout.
                guard let entries = reply.array?.first?.array?.last else { continue }
                for entry in Self.entries(entries) {
                    if matches(entry.event) { show(entry) }
                    last = entry.id
                }
            } catch {
                if !down { Terminal.note("events: Redis unavailable (\(error)); retrying") }
                down = true
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
    }

    private static func entries(_ reply: RedisReply) -> [Entry] { StreamEvent.entries(reply) }

    private func matches(_ event: [String: Any]) -> Bool { EventFilter(customer: customer, type: type).matches(event) }

    private func show(_ entry: Entry) {
        let event = entry.event
        if client.json {
            var object = event
            object["stream_id"] = entry.id
            printJSONLine(object)
            return
        }
        let type = shown(event.string("type") ?? "?")
        let time = event.string("at").map { shown(String($0.dropFirst(11).prefix(8))) } ?? ""
        var fields: [String] = []
        if let v = event.string("customer_id") { fields.append("customer=\(v)") }
        if let v = event.string("recommendation_id") { fields.append("rec=\(v)") }
        if let v = event.string("approval_id") { fields.append("approval=\(v.prefix(8))") }
        if let v = event.string("plan_id") { fields.append("plan=\(v.prefix(8))") }
        if let v = event.int("step_index") { fields.append("step=\(v)") }
        let data = event["data"] as? [String: Any] ?? [:]
        for key in ["reason", "error", "user_id", "approved_by", "policy"] {
            if let v = data[key] as? String, !v.isEmpty { fields.append("\(key)=\(v)") }
        }
        let colour: Terminal.Colour? = type.hasSuffix("failed") || type.hasSuffix("rolled_back") ? .red
            : type.hasSuffix("completed") || type.hasSuffix("approved") ? .green : nil
        let padded = type.padding(toLength: max(type.count, 27), withPad: " ", startingAt: 0)
        Terminal.line("\(Terminal.paint(shown(entry.id), .dim))  \(time)  \(Terminal.paint(padded, colour))  \(shown(fields.joined(separator: " ")))")
    }
}

// MARK: - On a Redis Cluster (PROTOCOL.md section 11)

extension Events {
    private var isCluster: Bool { layout.isCluster(url: client.url) }

    /// One stream per partition, `<prefix>:{p<k>}:events:stream`, merged in time order (the
    /// event's `at`, then its stream id). `--since` is a stream id, read as a time in every
    /// stream; `--follow` polls every stream, one pipeline per master, twice a second.
    private func runOnCluster() throws {
        let (redis, count) = try client.cluster(partitions: layout.partitions)
        defer { redis.close() }
        let streams = (0..<count).map { client.keys.partition($0).eventStream }
        var last = [String](repeating: since ?? "0-0", count: streams.count)
        if since != nil {
            while true {
                let page = try readAfter(redis, streams, &last)
                page.forEach(show)
                if page.isEmpty { break }
            }
        } else {
            let newest = try redis.pipelinePerMaster(streams.map { RedisCommand("XREVRANGE", $0, "+", "-", "COUNT", 1) })
            for (i, reply) in newest.enumerated() {
                if let id = reply.array?.first?.array?.first?.string { last[i] = id }
            }
            let pages = try redis.pipelinePerMaster(streams.map { RedisCommand("XREVRANGE", $0, "+", "-", "COUNT", max(self.count, 1000)) })
            let found = Self.merged(pages.map { Self.entries($0).filter { matches($0.event) } })
            found.suffix(self.count).forEach(show)
        }
        guard follow else { return }
        var backoff = Backoff(first: 0.2, max: 5)
        var down = false
        while true {
            do {
                try readAfter(redis, streams, &last).forEach(show)
                if down {
                    Terminal.note("events: Redis is back; resuming")
                    down = false
                    backoff.reset()
                }
                Thread.sleep(forTimeInterval: 0.5)
            } catch {
                if !down { Terminal.note("events: Redis unavailable (\(error)); retrying") }
                down = true
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
    }

    /// The matching entries after `last` in every stream (a page of each), merged; `last`
    /// moves past what was read.
    private func readAfter(_ redis: RedisClusterClient, _ streams: [String], _ last: inout [String]) throws -> [Entry] {
        let pages = try redis.pipelinePerMaster(streams.indices.map { RedisCommand("XRANGE", streams[$0], "(" + last[$0], "+", "COUNT", 1000) })
        var matching: [[Entry]] = []
        for (i, reply) in pages.enumerated() {
            if case .error(let message) = reply { throw RedisError.server(message) }
            let entries = Self.entries(reply)
            if let newest = entries.last { last[i] = newest.id }
            matching.append(entries.filter { matches($0.event) })
        }
        return Self.merged(matching)
    }

    /// Entries of several streams in time order: the event's `at` (RFC 3339 with
    /// milliseconds, UTC: it sorts as text), then the stream id's time.
    private static func merged(_ streams: [[Entry]]) -> [Entry] {
        func time(_ id: String) -> Int { Int(id.split(separator: "-").first ?? "") ?? 0 }
        return streams.flatMap { $0 }.sorted {
            let a = $0.event["at"] as? String ?? "", b = $1.event["at"] as? String ?? ""
            return a != b ? a < b : time($0.id) < time($1.id)
        }
    }
}
