import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Dead: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dead letters (<prefix>:dead): list, show one, requeue, purge.",
        discussion: "N is an entry's index in the list (LINDEX), the oldest 0, as `dead list` shows it. On a Redis Cluster (--cluster) the partitions' lists <prefix>:{p<k>}:dead and <prefix>:dead are merged by time; an entry of partition k's list is k:N, one of <prefix>:dead is N.",
        subcommands: [List.self, Show.self, Requeue.self, Purge.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The newest dead letters, oldest first.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var layout: LayoutOptions
        @Option(help: "Show at most this many (the newest).") var limit: Int = 50

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit: must be positive") }
        }

        func run() throws {
            try client.withState(layout) { redis, layout in
                let newest = try DeadLetters.newest(redis, layout: layout, limit: limit)
                let entries = newest.entries.map { (address: $0.address, entry: jsonObject($0.bytes) ?? [:]) }
                if client.json {
                    for (address, entry) in entries { printJSONLine(Dead.object(entry, at: address)) }
                    return
                }
                guard !entries.isEmpty else {
                    Terminal.line("no dead letters")
                    return
                }
                let now = redis.clock()
                var table = Table([
                    .init(title: "N", rightAligned: true), .init(title: "AGE"), .init(title: "QUEUE"), .init(title: "CODE"),
                    .init(title: "BYTES", rightAligned: true), .init(title: "ERROR", flexible: true, minimum: 12),
                ])
                table.colouring[3] = { _ in .red }
                for (address, entry) in entries {
                    let letter = DeadLetter(entry, keys: address.keys(layout))
                    table.add([
                        "\(address)", entry.date("at").map { Timestamps.relative($0, now: now) } ?? "",
                        letter.queueName, letter.code, letter.size.map { "\($0)" + (letter.truncated ? "+" : "") } ?? "?",
                        letter.message,
                    ])
                }
                table.print()
                let older = newest.total - entries.count
                if older > 0 { Terminal.line("… \(older) older (--limit)") }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One dead letter in full.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var layout: LayoutOptions
        @Argument(help: "Its index, N or k:N on a cluster (dead list shows it).") var n: String

        func run() throws {
            try client.withState(layout) { redis, layout in
                let n = try Dead.address(self.n, layout)
                guard let bytes = try DeadLetters.entry(n, layout: layout, redis: redis) else {
                    throw CommandFailure("no dead letter \(n) (the list has \(try redis.call(RedisCommand("LLEN", n.list(layout))).integer ?? 0))")
                }
                guard let entry = jsonObject(bytes) else { throw CommandFailure("dead letter \(n) is not JSON: \(DisplayText.escaped(bytes: Array(bytes.prefix(200))))") }
                if client.json {
                    printJSONLine(Dead.object(entry, at: n))
                    return
                }
                let letter = DeadLetter(entry, keys: n.keys(layout))
                let now = redis.clock()
                let at = entry.date("at").map { "\(shown(entry.string("at")!)) (\(Timestamps.relative($0, now: now)))" } ?? "?"
                Terminal.line("\(Terminal.paint("dead letter", .bold)) \(n)")
                Terminal.line("queue     \(shown(entry.string("queue") ?? "?"))")
                Terminal.line("at        \(at)")
                Terminal.line("error     \(Terminal.paint(shown(letter.code), .red)): \(shown(letter.message))")
                if let attempts = entry.int("attempts") { Terminal.line("attempts  \(attempts)") }
                Terminal.line("bytes     \(letter.size.map(String.init) ?? "?")")
                if letter.truncated {
                    Terminal.line("truncated yes: only the first \(letter.keptBytes) bytes were kept (sha256 \(shown(entry.string("raw_sha256") ?? "?")))")
                }
                // The message itself, escaped: decoded from raw_base64 too, its bytes that are not
                // UTF-8 shown as \xNN.
                if let (note, text) = letter.shownRaw {
                    Terminal.line(note)
                    Terminal.line(text)
                }
            }
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead letters' exact bytes back on their queues (and off the dead list).",
            discussion: "Truncated entries are refused: their full bytes are gone. Exit 1 when any entry was refused.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var layout: LayoutOptions
        @Argument(help: "Its index, N or k:N on a cluster (dead list shows it).") var n: String?
        @Flag(help: "Every entry that can be requeued.") var all = false

        func validate() throws {
            guard (n == nil) != !all else { throw ValidationError("give either N or --all") }
        }

        func run() throws {
            try client.withState(layout) { redis, layout in
                var entries: [(index: DeadLetterAddress, bytes: [UInt8])] = []
                if let n {
                    let address = try Dead.address(n, layout)
                    guard let bytes = try DeadLetters.entry(address, layout: layout, redis: redis) else {
                        throw CommandFailure("no dead letter \(address)")
                    }
                    entries = [(address, bytes)]
                } else {
                    let lists = DeadLetters.lists(layout)
                    let all = try redis.calls(lists.map { RedisCommand("LRANGE", $0.keys.dead, 0, -1) })
                    for (list, reply) in zip(lists, all) {
                        let items = (reply.array ?? []).compactMap(\.bytes)
                        entries += items.enumerated().map { (DeadLetterAddress(partition: list.partition, index: $0.offset), $0.element) }
                    }
                }
                var refused = 0
                var moved = 0
                for (index, bytes) in entries {
                    do {
                        let (queue, count) = try DeadLetters.requeue(bytes, at: index, layout: layout, redis: redis)
                        moved += 1
                        if client.json {
                            printJSONLine(Dead.object(["requeued": true, "queue": queue, "bytes": count], at: index))
                        } else {
                            Terminal.line("requeued dead letter \(index) onto \(queue) (\(count) bytes)")
                        }
                    } catch let failure as CommandFailure {
                        refused += 1
                        if client.json { printJSONLine(Dead.object(["requeued": false, "reason": failure.description], at: index)) }
                        Terminal.error("dead letter \(index) not requeued: \(failure.description)")
                    }
                }
                if all, !client.json { Terminal.line("requeued \(moved), refused \(refused)") }
                if refused > 0 { throw ExitCode(1) }
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every dead letter (of every list, on a cluster).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var layout: LayoutOptions

        func run() throws {
            try client.withState(layout) { redis, layout in
                let purged = try DeadLetters.purge(layout: layout, redis: redis)
                if client.json {
                    printJSONLine(["purged": purged])
                } else {
                    Terminal.line("purged \(purged) dead letter\(purged == 1 ? "" : "s")")
                }
            }
        }
    }

    /// What a person typed as N, or exit 1 saying what it may be.
    static func address(_ text: String, _ layout: StateLayout) throws -> DeadLetterAddress {
        guard let address = DeadLetterAddress(text, layout: layout) else {
            throw CommandFailure(layout.isPartitioned ? "no dead letter \(shown(text)): give N (of \(layout.keys.dead)) or k:N (of partition k's list), as dead list shows them"
                                                      : "no dead letter \(shown(text)): give its index, as dead list shows it")
        }
        return address
    }

    /// `object` with the entry's `index` (and on a cluster its `partition`, when it has one).
    static func object(_ object: [String: Any], at address: DeadLetterAddress) -> [String: Any] {
        var object = object
        object["index"] = address.index
        if let partition = address.partition { object["partition"] = partition }
        return object
    }
}
