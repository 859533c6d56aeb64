import Coordination
import CoordinatorDaemon
import Foundation
import Logging
import RedisClient
import Testing
import TestSupport

/// A real redis-server, daemons running against it (in this process, or as the built
/// binary), and a client connection for the test to act as agents and operators do.
final class Harness: @unchecked Sendable {
    let server: RedisServer
    let redis: RedisConnection
    let keys = Keys(prefix: "coord")
    private(set) var daemons: [Daemon] = []
    private var processes: [Process] = []

    init() throws {
        RedisProcess.ignoreSIGPIPE()
        server = try RedisServer.start()
        redis = try server.client()
    }

    deinit {
        for daemon in daemons { daemon.stop() }
        for process in processes where process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        redis.close()
        server.stop()
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

    @discardableResult
    func startDaemon(_ tweak: (inout DaemonConfiguration) -> Void = { _ in }) throws -> Daemon {
        let daemon = try Daemon(configuration: configuration(tweak), logger: Self.quietLogger)
        daemon.start()
        daemons.append(daemon)
        return daemon
    }

    func stopDaemons() {
        for daemon in daemons { daemon.stop() }
        daemons.removeAll()
    }

    /// The built `coordinatord` binary, next to the test bundle.
    static var binary: URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("coordinatord")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return dir.appendingPathComponent("coordinatord")
    }

    /// Starts the real binary (`coordinatord run …` or another subcommand).
    func launch(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["REDIS_URL"] = server.url
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildProcess.run(process)
        processes.append(process)
        return process
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

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw HarnessError.malformed(String(decoding: bytes, as: UTF8.self))
        }
        return object
    }

    /// Every event in the stream so far, oldest first.
    func events() throws -> [[String: Any]] {
        let entries = try redis.send("XRANGE", keys.eventStream, "-", "+").array ?? []
        return try entries.compactMap { entry in
            guard let fields = entry.array?.last?.array else { return nil }
            var index = 0
            while index + 1 < fields.count {
                if fields[index].string == "event", let bytes = fields[index + 1].bytes { return try Self.object(bytes) }
                index += 2
            }
            return nil
        }
    }

    func events(plan planID: String) throws -> [[String: Any]] {
        try events().filter { $0["plan_id"] as? String == planID }
    }

    func deadLetters() throws -> [[String: Any]] {
        try (redis.send("LRANGE", keys.dead, 0, -1).array ?? []).compactMap(\.bytes).map(Self.object)
    }

    func plan(_ id: String) throws -> [String: Any]? {
        guard let bytes = try redis.send("GET", keys.plan(id)).bytes else { return nil }
        return try Self.object(bytes)
    }

    /// Polls until `condition` holds, or fails the test after `timeout`.
    func wait(_ what: String, timeout: Double = 20, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw HarnessError.timeout("waited \(timeout) s for \(what)")
    }

    func waitForPlan(_ id: String, status: String, timeout: Double = 20) throws -> [String: Any] {
        var last: [String: Any]?
        try wait("plan \(id) to be \(status)", timeout: timeout) {
            last = try plan(id)
            return last?["status"] as? String == status
        }
        return last!
    }

    func length(_ list: String) throws -> Int {
        Int(try redis.send("LLEN", list).integer ?? 0)
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
