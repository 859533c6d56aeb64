import ArgumentParser
import CoordinatorDaemon
import Foundation
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
                let total = Int(try connection.send("LLEN", keys.dead).integer ?? 0)
                let first = max(0, total - limit)
                let entries = (try connection.send("LRANGE", keys.dead, first, -1).array ?? []).map { jsonObject($0.bytes) ?? [:] }
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
                if let raw = entry.string("raw") {
                    Terminal.line("raw")
                    Terminal.line(shown(raw))
                } else if let base64 = entry.string("raw_base64") {
                    if let data = Data(base64Encoded: base64) {
                        Terminal.line("raw (from raw_base64: not UTF-8; such bytes shown as \\xNN)")
                        Terminal.line(DisplayText.escaped(bytes: Array(data)))
                    } else {
                        Terminal.line("raw_base64 (not valid base64)")
                        Terminal.line(shown(base64))
                    }
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

        /// Atomically: the entry leaves the dead list and its bytes go back on the queue, or nothing happens.
        static let script = RedisScript("""
            if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
              redis.call('LPUSH', KEYS[2], ARGV[2])
              return 1
            end
            return 0
            """)

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
                        let (queue, raw) = try DeadLetter.requeueable(bytes, keys: keys)
                        guard try connection.run(Self.script, keys: [keys.dead, queue], args: [bytes, raw]).integer == 1 else {
                            throw CommandFailure("it left the dead list meanwhile (requeued or trimmed by someone else)")
                        }
                        moved += 1
                        if client.json {
                            printJSONLine(["index": index, "requeued": true, "queue": queue, "bytes": raw.count])
                        } else {
                            Terminal.line("requeued dead letter \(index) onto \(queue) (\(raw.count) bytes)")
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

        static let script = RedisScript("""
            local n = redis.call('LLEN', KEYS[1])
            redis.call('DEL', KEYS[1])
            return n
            """)

        func run() throws {
            try answering {
                let connection = try client.connect()
                defer { connection.close() }
                let purged = try connection.run(Self.script, keys: [client.keys.dead], args: []).integer ?? 0
                if client.json {
                    printJSONLine(["purged": purged])
                } else {
                    Terminal.line("purged \(purged) dead letter\(purged == 1 ? "" : "s")")
                }
            }
        }
    }
}

/// One entry of the dead-letter list, `{"queue","raw"|"raw_base64","error":{"code","message"},"at"}`
/// (PROTOCOL.md section 6), as read by people.
struct DeadLetter {
    var entry: [String: Any]
    var queueName: String
    var code: String
    var message: String
    var truncated: Bool
    var keptBytes: Int
    /// The message's full length.
    var size: Int?

    init(_ entry: [String: Any], keys: Keys) {
        self.entry = entry
        let queue = entry.string("queue") ?? "?"
        queueName = keys.queueName(queue)
        let error = entry["error"] as? [String: Any] ?? [:]
        code = error.string("code") ?? "?"
        message = error.string("message") ?? ""
        truncated = entry["truncated"] as? Bool ?? false
        let raw = entry.string("raw").map { $0.utf8.count } ?? entry.string("raw_base64").flatMap { Data(base64Encoded: $0)?.count }
        keptBytes = raw ?? 0
        size = entry.int("raw_bytes") ?? raw
    }

    /// The queue and exact bytes to put back, or why not.
    static func requeueable(_ bytes: [UInt8], keys: Keys) throws -> (queue: String, raw: [UInt8]) {
        guard let entry = jsonObject(bytes) else { throw CommandFailure("the entry is not JSON") }
        let letter = DeadLetter(entry, keys: keys)
        if letter.truncated {
            throw CommandFailure("it is truncated: only \(letter.keptBytes) of its \(letter.size.map(String.init) ?? "?") bytes were kept (--dead-letter-raw-max), so the message cannot be restored")
        }
        // Only the daemon's own input queues: a forged entry must not steer bytes anywhere else.
        let queues = [keys.requests, keys.approvals, keys.stepResults]
        guard let queue = entry.string("queue"), queues.contains(queue) else {
            throw CommandFailure("its queue \"\(entry.string("queue") ?? "")\" is not one of \(queues.joined(separator: ", "))")
        }
        if let raw = entry.string("raw") { return (queue, Array(raw.utf8)) }
        if let base64 = entry.string("raw_base64") {
            guard let data = Data(base64Encoded: base64) else { throw CommandFailure("its raw_base64 is not valid base64") }
            return (queue, Array(data))
        }
        throw CommandFailure("it holds neither raw nor raw_base64")
    }
}
