import Coordination
import CoordinatorDaemon
import Foundation
import Logging
import RedisClient
import Testing
import TestSupport
import TestTraits

/// Every suite that starts redis-server or daemons runs inside this one. Its tests run in
/// parallel: each has its own redis-server on a port it holds for its whole life
/// (`PortReservation`), its own temporary directories, in-process daemons configured by value
/// and binaries given an explicit environment, so no two tests share anything but the machine.
/// Each test has a time limit, so one hung daemon fails its test instead of hanging the run. A
/// new suite nests under it from its own file, and says how it uses the machine:
///
///     extension RealRedis {
///         @Suite("What it covers", .sharesMachine)
///         struct MyTests { @Test func … }
///     }
///
/// `.sharesMachine` goes on each nested suite, not here: put here, it did not reach the tests
/// of suites nested from other files (they ran ungated, on the cooperative pool). A test that
/// must have the machine to itself says `.alone`, and why. A nested suite is `.serialized` only
/// when its tests share something, and says what.
enum RealRedis {}

/// A real redis-server, daemons running against it (in this process, or as the built
/// binary), and a client connection for the test to act as agents and operators do.
final class Harness: @unchecked Sendable {
    let server: RedisServer
    let redis: RedisConnection
    let keys = Keys(prefix: "coord")
    private(set) var daemons: [Daemon] = []
    private var processes: [Process] = []
    /// Ports handed to daemons' metrics endpoints, held until the harness goes.
    private var reservations: [PortReservation] = []
    /// Events read so far, oldest first, and the stream id of the last one.
    private var seenEvents: [[String: Any]] = []
    private var lastEventID = "0-0"
    /// A connection of its own for `XREAD BLOCK`, opened on first use.
    private var eventReader: RedisConnection?

    init(redisArguments: [String] = [], unixSocket: Bool = false) throws {
        RedisProcess.ignoreSIGPIPE()
        server = try RedisServer.start(arguments: redisArguments, unixSocket: unixSocket)
        redis = try server.client()
    }

    deinit {
        // A daemon whose stop hangs is left behind (threads cannot be killed) rather than hanging
        // the suite; its test fails.
        for daemon in daemons {
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                daemon.stop()
                done.signal()
            }
            if done.wait(timeout: .now() + 20) == .timedOut {
                Issue.record("Daemon.stop() did not return within 20 s")
            }
        }
        for process in processes where !ChildProcess.stop(process, timeout: 10) {
            Issue.record("\(process.arguments ?? []) ignored SIGTERM for 10 s and was killed")
        }
        eventReader?.close()
        redis.close()
        server.stop()
        for reservation in reservations { reservation.release() }
    }

    /// A port for a daemon's metrics endpoint (`--metrics-port`), reserved until the harness
    /// goes: the daemon binds it while it is held (`PortReservation(forListener:)`), and no
    /// other process can take it before the daemon does, nor while the test goes on.
    func metricsPort() throws -> Int {
        let reservation = try PortReservation(forListener: true)
        reservations.append(reservation)
        return reservation.port
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "coordinatord.test") { LogLineHandler(label: $0, format: .text, level: .critical) }
        logger.logLevel = .critical
        return logger
    }()

    func configuration(_ tweak: (inout DaemonConfiguration) -> Void = { _ in }) -> DaemonConfiguration {
        var config = DaemonConfiguration()
        config.redisURL = server.url
        config.simSpeed = 0
        config.heartbeatTTL = 2
        config.planLease = 2
        tweak(&config)
        return config
    }

    /// Starts a daemon in this process; its log goes to `log` when given (else nowhere).
    @discardableResult
    func startDaemon(log: LogRecorder? = nil, level: Logger.Level = .info,
                     _ tweak: (inout DaemonConfiguration) -> Void = { _ in }) throws -> Daemon {
        let config = configuration(tweak)
        let daemon = try Daemon(configuration: config, logger: log?.logger(level: level) ?? Self.quietLogger)
        daemon.start()
        daemons.append(daemon)
        intakeLoops += max(1, config.workers) + 1 + max(1, config.planWorkers)
        return daemon
    }

    /// The blocking loops (request workers, the decision worker and the executor lanes) of the
    /// daemons started here.
    private var intakeLoops = 0

    /// Waits until every daemon started here has written its heartbeat and the server lists at
    /// least as many clients blocked in BLMOVE as they have intake loops and executors: each is
    /// idle, waiting for work, so a push that follows is taken by loops of every daemon, not only
    /// by the first one started.
    func waitUntilReady() throws {
        let loops = intakeLoops
        for daemon in daemons {
            try wait("the heartbeat of \(daemon.workerID)") { try redis.send("EXISTS", keys.worker(daemon.workerID)).integer == 1 }
        }
        let deadline = Date().addingTimeInterval(20)
        var blocked = 0
        while Date() < deadline {
            let clients = try redis.send("CLIENT", "LIST").string ?? ""
            blocked = clients.split(separator: "\n").filter { line in
                let fields = line.split(separator: " ")
                return fields.contains("cmd=blmove") && fields.contains { $0.hasPrefix("flags=") && $0.contains("b") }
            }.count
            if blocked >= loops { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
        throw HarnessError.timeout("\(blocked) clients blocked in BLMOVE, not the \(loops) loops of \(daemons.count) daemons")
    }

    /// Each daemon's `processed` count (requests and decisions it committed) from the heartbeat
    /// it writes twice a second (`coord:workers:<id>`), once they add up to `total`, by worker
    /// id. A missing heartbeat or count is waited for and fails the test at the timeout: it never
    /// counts as zero.
    func processed(by daemons: [Daemon], total: Int, timeout: Double = 30) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try wait("the daemons' heartbeats to count \(total) processed", timeout: timeout) {
            counts = [:]
            for daemon in daemons {
                guard let text = try redis.send("HGET", keys.worker(daemon.workerID), "processed").string,
                      let count = Int(text) else { return false }
                counts[daemon.workerID] = count
            }
            return counts.values.reduce(0, +) == total
        }
        return counts
    }

    /// Each daemon started here did some of the work: `total` processed between them, none
    /// idle. "Two daemons did it at once" means nothing when one did it all.
    func expectEveryDaemonWorked(total: Int, since before: [String: Int] = [:]) throws {
        let counts = try processed(by: daemons, total: total + before.values.reduce(0, +))
        #expect(counts.count == daemons.count && daemons.count > 1)
        for daemon in daemons {
            let did = try #require(counts[daemon.workerID]) - (before.isEmpty ? 0 : try #require(before[daemon.workerID]))
            #expect(did > 0, "daemon \(daemon.workerID) processed none of \(total): \(counts), before \(before)")
        }
    }

    func stopDaemons() {
        for daemon in daemons { daemon.stop() }
        daemons.removeAll()
    }

    /// The built `coordinatord` binary, next to the test bundle.
    static var binary: URL { BuiltProduct.url("coordinatord") }

    /// Starts the real binary (`coordinatord run …` or another subcommand), with an explicit
    /// environment: `REDIS_URL` of this harness's server and `environment`, nothing ambient.
    /// It is stopped (SIGTERM, SIGKILL after 10 s) when the harness goes, and killed by the
    /// kernel if the test process dies (see `ChildProcess`).
    func launch(_ arguments: [String], environment extra: [String: String] = [:],
                output: FileHandle? = nil) throws -> Process {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        // Only what the test sets (and PATH, HOME, LANG): an ambient COORD_* changes no daemon.
        process.environment = ChildProcess.environment(["REDIS_URL": server.url].merging(extra) { $1 })
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildProcess.run(process)
        processes.append(process)
        return process
    }

    /// Runs the binary to its end (killed after `timeout` s) and returns its exit status and stdout.
    func runToEnd(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let pipe = Pipe()
        let process = try launch(arguments, environment: environment, output: pipe.fileHandleForWriting)
        // Killed at the deadline, so that the read to the end of its output below ends too.
        let deadline = ChildProcess.deadline(process, timeout: timeout, command: arguments)
        try pipe.fileHandleForWriting.close()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        do {
            try deadline.wait()
        } catch {
            throw HarnessError.timeout("\(arguments) did not end within \(timeout) s")
        }
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: - Acting as clients

    func push(_ json: String, to queue: String = "coord:requests") throws {
        _ = try redis.send("LPUSH", queue, json)
    }

    func push(bytes: [UInt8], to queue: String = "coord:requests") throws {
        _ = try redis.send("LPUSH", queue, bytes)
    }

    /// The next reply on a list, oldest first, as a JSON object.
    func reply(on list: String, timeout: Double = 15) throws -> [String: Any] {
        guard let (_, value) = try redis.blockingPopRight(list, timeout: timeout) else {
            throw HarnessError.timeout("no reply on \(list) within \(timeout) s")
        }
        return try Self.object(value)
    }

    /// An array reply of JSON objects (LRANGE of a reply or dead-letter list), each one strictly:
    /// anything else throws rather than being left out.
    static func objects(_ reply: RedisReply) throws -> [[String: Any]] {
        guard let items = reply.array else { throw HarnessError.malformed("not an array: \(reply)") }
        return try items.map { item in
            guard let bytes = item.bytes else { throw HarnessError.malformed("not a string: \(item)") }
            return try object(bytes)
        }
    }

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw HarnessError.malformed(String(decoding: bytes, as: UTF8.self))
        }
        return object
    }

    /// Every event appended to the stream since the harness started, oldest first. Read
    /// incrementally (from the last id seen), so entries trimmed by MAXLEN later stay here.
    /// Strict: a malformed entry throws (and keeps throwing: the last id seen stays before it),
    /// so a check that an event did not happen cannot pass on a stream the harness misread.
    func events() throws -> [[String: Any]] {
        let reply = try redis.send("XRANGE", keys.eventStream, "(\(lastEventID)", "+")
        guard let entries = reply.array else {
            throw HarnessError.malformed("XRANGE \(keys.eventStream) answered \(reply), not an array")
        }
        try take(entries)
        return seenEvents
    }

    /// Parses every entry first, then records them: nothing of a batch with a malformed entry is
    /// taken, and `lastEventID` moves only past entries that parsed.
    private func take(_ entries: [RedisReply]) throws {
        var parsed: [(id: String, event: [String: Any])] = []
        for entry in entries {
            parsed.append(try Self.streamEntry(entry))
        }
        for (id, event) in parsed {
            seenEvents.append(event)
            lastEventID = id
        }
    }

    /// One stream entry as the daemon writes it (the commit script's XADD): an id and exactly the
    /// fields `type` and `event`, the event a JSON object whose `type` is the field's.
    static func streamEntry(_ entry: RedisReply) throws -> (id: String, event: [String: Any]) {
        guard let parts = entry.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].array,
              fields.count % 2 == 0 else {
            throw HarnessError.malformed("stream entry \(entry)")
        }
        var values: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: fields.count, by: 2) {
            guard let name = fields[index].string, let value = fields[index + 1].bytes, values[name] == nil else {
                throw HarnessError.malformed("stream entry \(id): field \(index / 2) of \(entry)")
            }
            values[name] = value
        }
        guard Set(values.keys) == ["type", "event"], let type = values["type"], let bytes = values["event"] else {
            throw HarnessError.malformed("stream entry \(id) has fields \(values.keys.sorted()), not [event, type]")
        }
        let event = try object(bytes)
        guard let eventType = event["type"] as? String, eventType == String(decoding: type, as: UTF8.self) else {
            throw HarnessError.malformed("stream entry \(id): type field \(String(decoding: type, as: UTF8.self)) but event \(event)")
        }
        return (id, event)
    }

    /// Blocks (XREAD BLOCK from the last id seen) until new events arrive or `seconds` pass.
    /// Only a broken connection or LOADING (Redis restarting under a fault test) is waited out;
    /// any other error, and a malformed entry, fails the wait.
    private func awaitEvents(upTo seconds: Double) throws {
        do {
            if eventReader == nil { eventReader = try server.client() }
            let reader = try #require(eventReader)
            let reply = try reader.send("XREAD", "COUNT", 1000, "BLOCK", max(1, Int(seconds * 1000)), "STREAMS",
                                        keys.eventStream, lastEventID)
            if reply.isNull { return }  // BLOCK timed out: nothing new
            guard let streams = reply.array, streams.count == 1, let stream = streams[0].array, stream.count == 2,
                  stream[0].string == keys.eventStream, let entries = stream[1].array else {
                throw HarnessError.malformed("XREAD answered \(reply)")
            }
            try take(entries)
        } catch RedisError.connection {
            // The next command on the connection reconnects; a deadline bounds the caller.
            Thread.sleep(forTimeInterval: seconds)
        } catch RedisError.server(let message) where message.hasPrefix("LOADING") {
            // A restarted Redis still reading its data answers nothing else yet.
            Thread.sleep(forTimeInterval: seconds)
        }
    }

    /// Waits for the first event (from the start) satisfying `match`, and returns it.
    @discardableResult
    func waitForEvent(_ what: String, timeout: Double = 20, _ match: ([String: Any]) -> Bool) throws -> [String: Any] {
        var found: [String: Any]?
        try wait(what, timeout: timeout) {
            found = try events().first(where: match)
            return found != nil
        }
        return try #require(found)
    }

    func events(plan planID: String) throws -> [[String: Any]] {
        try events().filter { $0["plan_id"] as? String == planID }
    }

    func deadLetters() throws -> [[String: Any]] {
        try Self.objects(redis.send("LRANGE", keys.dead, 0, -1))
    }

    func plan(_ id: String) throws -> [String: Any]? {
        guard let bytes = try redis.send("GET", keys.plan(id)).bytes else { return nil }
        return try Self.object(bytes)
    }

    /// Checks `condition` each time new events arrive (XREAD BLOCK from the last id), and at
    /// least every 50 ms for state that changes without an event; fails after `timeout`.
    func wait(_ what: String, timeout: Double = 20, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            try awaitEvents(upTo: 0.05)
        }
        if try condition() { return }
        throw HarnessError.timeout("waited \(timeout) s for \(what)")
    }

    func waitForPlan(_ id: String, status: String, timeout: Double = 20) throws -> [String: Any] {
        try waitForPlan(id, anyOf: [status], timeout: timeout)
    }

    /// Waits until plan `id` is stored with a status among `statuses`, and returns it. A plan
    /// not stored yet, or stored without a status, is polled again (never read as empty); at
    /// the timeout the wait fails.
    func waitForPlan(_ id: String, anyOf statuses: Set<String>, timeout: Double = 20) throws -> [String: Any] {
        var last: [String: Any]?
        try wait("plan \(id) to be \(statuses.sorted().joined(separator: " or "))", timeout: timeout) {
            guard let stored = try plan(id), let status = stored["status"] as? String else { return false }
            last = stored
            return statuses.contains(status)
        }
        return try #require(last)
    }

    /// Every reply on `list` until `count` have come, then the ones that came late, proven all
    /// there by `settle()` (see the other form).
    func collectReplies(on list: String, count: Int, timeout: Double = 60, settled: Bool = true,
                        sign: ((String) throws -> String)? = nil) throws -> [[String: Any]] {
        try collectReplies(on: [list], count: count, timeout: timeout, settled: settled, sign: sign)
    }

    /// Every reply on `lists` until `count` have come; then, `settled`, every reply that came
    /// after them: a late duplicate is written by the commit of its message, and `settle()`
    /// returns only once no message is queued or in flight (its marker `sign`ed when the
    /// daemons verify signatures), so each reply there will ever be is on its list by then and
    /// is taken too, where a grace period would only hope so. Without `settled`, it returns
    /// once `count` have come, claiming nothing about what follows. Tolerates Redis being
    /// restarted meanwhile.
    func collectReplies(on lists: [String], count: Int, timeout: Double = 60, settled: Bool = true,
                        sign: ((String) throws -> String)? = nil) throws -> [[String: Any]] {
        var replies: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while replies.count < count && Date() < deadline {
            do {
                let reply = try redis.send(RedisCommand(arguments: (["BRPOP"] + lists + ["0.2"]).map { Array($0.utf8) }))
                if let parts = reply.array, parts.count == 2, let value = parts[1].bytes { replies.append(try Self.object(value)) }
            } catch let error as RedisError {
                guard case .connection = error else { throw error }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        guard settled, replies.count >= count else { return replies }
        try settle(timeout: max(10, deadline.timeIntervalSinceNow), sign: sign)
        for list in lists {
            while let value = try redis.send("RPOP", list).bytes { replies.append(try Self.object(value)) }
        }
        return replies
    }

    /// Keys matching `pattern` (SCAN, for tests only).
    func scanKeys(_ pattern: String) throws -> [String] {
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try redis.send("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let found = parts[1].array else {
                throw HarnessError.malformed("SCAN answered \(reply)")
            }
            cursor = next
            keys += try found.map { key in
                guard let name = key.string else { throw HarnessError.malformed("SCAN key \(key)") }
                return name
            }
        } while cursor != "0"
        return keys
    }

    /// Markers pushed by `settle()` so far.
    private var markers = 0

    /// Proof that intake has nothing left to do, for a check that something did NOT happen
    /// (no second reply, no further dead letter): a marker request pushed now (a `get_plan` of a
    /// plan that does not exist) is answered `not_found`, so every request queued before it has
    /// been taken; then nothing is queued or in flight on the request and decision queues, so
    /// every message taken has been committed, its replies, dead letters and events with it
    /// (one script, which also acknowledges it). Nothing left can still write them. Waits for
    /// that, where a sleep would only hope. The marker counts as one processed request.
    /// Under `--trust`, `sign` signs the marker as a principal that may read plans.
    @discardableResult
    func settle(timeout: Double = 30, sign: ((String) throws -> String)? = nil) throws -> [String: Any] {
        markers += 1
        let list = "test:marker:\(markers)"
        let request = Wire.json(["kind": "get_plan", "plan_id": "marker-\(markers)", "request_id": "marker-\(markers)",
                                 "reply_to": list])
        try push(try sign?(request) ?? request)
        let marker = try reply(on: list, timeout: timeout)
        guard Self.code(marker) == "not_found" else { throw HarnessError.malformed("marker reply \(marker)") }
        try wait("nothing queued or in flight on coord:requests and coord:approvals", timeout: timeout) {
            let held = try (scanKeys("\(keys.prefix):inflight:*:requests:*") + scanKeys("\(keys.prefix):inflight:*:approvals:*"))
                .reduce(0) { $0 + (try length($1)) }
            return try held == 0 && length(keys.requests) == 0 && length(keys.approvals) == 0
        }
        return marker
    }

    /// Waits until every daemon started here has written two heartbeats since now: the second
    /// read its counters after anything committed before this call was counted.
    func awaitFreshHeartbeats() throws {
        for daemon in daemons {
            let key = keys.worker(daemon.workerID)
            for _ in 0..<2 {
                let seen = try redis.send("HGET", key, "beat_at").string
                try wait("a new heartbeat of \(daemon.workerID)") {
                    let now = try redis.send("HGET", key, "beat_at").string
                    return now != nil && now != seen
                }
            }
        }
    }

    /// Step results in the daemons' in-flight lists (`coord:inflight:…:steps:results:…`), in all.
    func stepResultsInFlight() throws -> Int {
        try scanKeys("\(keys.prefix):inflight:*:steps:results:*").reduce(0) { $0 + (try length($1)) }
    }

    /// Waits until every step result pushed so far has been taken and handled: none queued,
    /// none in a daemon's in-flight list, none waiting in the mailbox of any of `plans`. A
    /// result is acknowledged by the commit that applies, refuses or mails it, so its effects
    /// are all written by then: a check that a result changed nothing follows this, not a sleep.
    func stepResultsHandled(plans: [String]) throws {
        try wait("every step result handled") {
            try stepResultsInFlight() == 0 && length(keys.stepResults) == 0
                && plans.allSatisfy { try length(keys.planResults($0)) == 0 }
        }
    }

    /// Messages in every in-flight list (`coord:inflight:…`), in all.
    func inflightCount() throws -> Int {
        try scanKeys("\(keys.prefix):inflight:*").reduce(0) { $0 + (try length($1)) }
    }

    /// The `error.code` of a reply or dead letter.
    static func code(_ object: [String: Any]) -> String? { (object["error"] as? [String: Any])?["code"] as? String }

    /// LLEN, HLEN, ZCARD: an answer that is not an integer throws (never reads as 0).
    func length(_ list: String) throws -> Int { try integer("LLEN", list) }
    func hlen(_ key: String) throws -> Int { try integer("HLEN", key) }
    func zcard(_ key: String) throws -> Int { try integer("ZCARD", key) }

    private func integer(_ command: String, _ key: String) throws -> Int {
        let reply = try redis.send(command, key)
        guard let value = reply.integer else { throw HarnessError.malformed("\(command) \(key) answered \(reply)") }
        return Int(value)
    }
}

enum HarnessError: Error, CustomStringConvertible {
    case timeout(String)
    case malformed(String)

    var description: String {
        switch self {
        case .timeout(let s): return "timeout: \(s)"
        case .malformed(let s): return "not a JSON object: \(s)"
        }
    }
}

extension RedisConnection {
    /// BRPOP: replies are LPUSHed, so the oldest is at the right.
    func blockingPopRight(_ key: String, timeout: Double) throws -> (String, [UInt8])? {
        let reply = try send("BRPOP", key, timeout)
        guard let parts = reply.array, parts.count == 2, let value = parts[1].bytes else { return nil }
        return (parts[0].string ?? key, value)
    }
}

/// Builds wire messages for tests.
enum Wire {
    static func recommendation(_ id: String, agent: String = "cost-agent-1", action: String = "scale_up",
                               risk: String = "low", resources: [String] = [], dependencies: [String] = [],
                               priority: Int = 5, savings: Double = 100, parameters: [String: Any] = [:]) -> [String: Any] {
        ["id": id, "agent_id": agent, "agent_type": "cost", "type": "cost", "title": id, "action": action,
         "risk_level": risk, "estimated_savings": savings, "affected_resources": resources,
         "dependencies": dependencies, "priority": priority, "confidence": 0.9, "parameters": parameters]
    }

    static func coordinate(_ requestID: String, customer: String = "cust-1", replyTo: String? = "test:replies",
                           autoApprove: Bool = true, executeNow: Bool = false, _ recommendations: [[String: Any]]) -> String {
        var object: [String: Any] = ["kind": "coordinate", "request_id": requestID, "customer_id": customer,
                                     "auto_approve": autoApprove, "execute_now": executeNow,
                                     "recommendations": recommendations]
        if let replyTo { object["reply_to"] = replyTo }
        return json(object)
    }

    static func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
