import ArgumentParser
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

struct Dead: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dead letters (<prefix>:dead): list, show one, requeue, purge.",
        discussion: "N is an entry's index in the list (LINDEX), the oldest 0, as `dead list` shows it.",
        subcommands: [List.self, Show.self, Requeue.self, Purge.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The newest dead letters, oldest first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Show at most this many (the newest).") var limit: Int = 50

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit: must be positive") }
        }

        func run() throws {
            try answering {
                let connection = try client.connect()
                defer { connection.close() }
                let keys = client.keys
                let newest = try DeadLetters.newest(connection, keys: keys, limit: limit)
                let first = newest.first
                let entries = newest.entries.map { jsonObject($0) ?? [:] }
                if client.json {
                    for (offset, entry) in entries.enumerated() {
                        var object = entry
                        object["index"] = first + offset
                        printJSONLine(object)
                    }
                    return
                }
                guard !entries.isEmpty else {
                    Terminal.line("no dead letters")
                    return
                }
                let now = redisNow(connection)
                var table = Table([
                    .init(title: "N", rightAligned: true), .init(title: "AGE"), .init(title: "QUEUE"), .init(title: "CODE"),
                    .init(title: "BYTES", rightAligned: true), .init(title: "ERROR", flexible: true, minimum: 12),
                ])
                table.colouring[3] = { _ in .red }
                for (offset, entry) in entries.enumerated() {
                    let letter = DeadLetter(entry, keys: keys)
                    table.add([
                        "\(first + offset)", entry.date("at").map { Timestamps.relative($0, now: now) } ?? "",
                        letter.queueName, letter.code, letter.size.map { "\($0)" + (letter.truncated ? "+" : "") } ?? "?",
                        letter.message,
                    ])
                }
                table.print()
                if first > 0 { Terminal.line("… \(first) older (--limit)") }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One dead letter in full.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Its index (dead list shows it).") var n: Int

        func run() throws {
            try answering {
                let connection = try client.connect()
                defer { connection.close() }
                let keys = client.keys
                guard let bytes = try connection.send("LINDEX", keys.dead, n).bytes else {
                    throw CommandFailure("no dead letter \(n) (the list has \(try connection.send("LLEN", keys.dead).integer ?? 0))")
                }
                guard let entry = jsonObject(bytes) else { throw CommandFailure("dead letter \(n) is not JSON: \(DisplayText.escaped(bytes: Array(bytes.prefix(200))))") }
                if client.json {
                    var object = entry
                    object["index"] = n
                    printJSONLine(object)
                    return
                }
                let letter = DeadLetter(entry, keys: keys)
                let now = redisNow(connection)
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
        @Argument(help: "Its index (dead list shows it).") var n: Int?
        @Flag(help: "Every entry that can be requeued.") var all = false

        func validate() throws {
            guard (n == nil) != !all else { throw ValidationError("give either N or --all") }
        }

        func run() throws {
            try answering {
                let connection = try client.connect()
                defer { connection.close() }
                let keys = client.keys
                var entries: [(index: Int, bytes: [UInt8])] = []
                if let n {
                    guard let bytes = try connection.send("LINDEX", keys.dead, n).bytes else {
                        throw CommandFailure("no dead letter \(n)")
                    }
                    entries = [(n, bytes)]
                } else {
                    let all = (try connection.send("LRANGE", keys.dead, 0, -1).array ?? []).compactMap(\.bytes)
                    entries = all.enumerated().map { ($0.offset, $0.element) }
                }
                var refused = 0
                var moved = 0
                for (index, bytes) in entries {
                    do {
                        let (queue, count) = try DeadLetters.requeue(bytes, keys: keys, connection: connection)
                        moved += 1
                        if client.json {
                            printJSONLine(["index": index, "requeued": true, "queue": queue, "bytes": count])
                        } else {
                            Terminal.line("requeued dead letter \(index) onto \(queue) (\(count) bytes)")
                        }
                    } catch let failure as CommandFailure {
                        refused += 1
                        if client.json { printJSONLine(["index": index, "requeued": false, "reason": failure.description]) }
                        Terminal.error("dead letter \(index) not requeued: \(failure.description)")
                    }
                }
                if all, !client.json { Terminal.line("requeued \(moved), refused \(refused)") }
                if refused > 0 { throw ExitCode(1) }
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every dead letter.")
        @OptionGroup var client: ClientOptions

        func run() throws {
            try answering {
                let connection = try client.connect()
                defer { connection.close() }
                let purged = try DeadLetters.purge(keys: client.keys, connection: connection)
                if client.json {
                    printJSONLine(["purged": purged])
                } else {
                    Terminal.line("purged \(purged) dead letter\(purged == 1 ? "" : "s")")
                }
            }
        }
    }
}
