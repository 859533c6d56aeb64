import CoordinatorDaemon
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Operations
import RedisClient

/// The console's routes. Every Redis call goes through `bridge` (dedicated threads); every
/// read is bounded (`Limits`), whatever Redis holds.
struct Console: Sendable {
    let configuration: WebConsoleConfiguration
    let bridge: RedisBridge
    let tail: any EventFeed
    let logger: Logger
    let security: Security
    let risks = RiskTally()

    init(configuration: WebConsoleConfiguration, bridge: RedisBridge, tail: any EventFeed, logger: Logger) {
        self.configuration = configuration
        self.bridge = bridge
        self.tail = tail
        self.logger = logger
        security = Security(host: configuration.host, port: configuration.port, serverNames: configuration.serverNames,
                            secure: configuration.tls != nil)
    }

    /// The global keys (the entry queues; the only ones on one Redis).
    var keys: Keys { configuration.keys }
    /// Where the daemon's state is: on a Redis Cluster every page reads the partitions.
    var layout: StateLayout { configuration.layout }

    /// Dead-letter requeue and purge: only where people are authenticated by a proxy
    /// (`--allow-unsigned`); under `--trust` operators use the CLI.
    var deadLetterActions: Bool {
        if case .unsigned = configuration.decisions { return true }
        return false
    }

    func routes(_ router: Router<ConsoleContext>) {
        router.get("/static/app.js") { _, _ in Self.asset(Assets.script, type: "text/javascript; charset=utf-8") }
        router.get("/static/style.css") { _, _ in Self.asset(Assets.style, type: "text/css; charset=utf-8") }

        router.get("/") { _, context in try await page("Overview", "overview", context, live: "/fragment/overview") { try overview($0) } }
        router.get("/fragment/overview") { _, _ in try await fragment { try overview($0) } }

        router.get("/approvals") { request, context in
            let customer = Self.query(request, "customer")
            let live = "/fragment/approvals" + (customer.map { "?customer=\(HTML.url($0))" } ?? "")
            return try await page("Approvals", "approvals", context, live: live) { try approvals($0, customer: customer) }
        }
        router.get("/fragment/approvals") { request, _ in
            let customer = Self.query(request, "customer")
            return try await fragment { try approvals($0, customer: customer) }
        }
        router.get("/approvals/:id") { request, context in
            let id = try Self.identifier(context, "id")
            return try await page("Approval", "approvals", context) { try approval($0, id: id, context: context) }
        }
        router.post("/approvals/:id/prepare") { request, context in try await prepare(request, context) }
        router.post("/approvals/:id/decide") { request, context in try await decide(request, context) }

        router.get("/plans") { _, context in try await page("Plans", "plans", context, live: "/fragment/plans") { try plans($0) } }
        router.get("/fragment/plans") { _, _ in try await fragment { try plans($0) } }
        router.get("/plans/:id") { _, context in
            let id = try Self.identifier(context, "id")
            return try await page("Plan", "plans", context, live: "/fragment/plans/\(HTML.url(id))") { try plan($0, id: id) }
        }
        router.get("/fragment/plans/:id") { _, context in
            let id = try Self.identifier(context, "id")
            return try await fragment { try plan($0, id: id) }
        }

        router.get("/events") { request, context in
            let filter = try Self.eventFilter(request)
            return try await page("Events", "events", context) { _ in Pages.events(filter) }
        }
        router.get("/events/stream") { request, _ in try await eventStream(request) }

        router.get("/dead") { _, context in try await page("Dead letters", "dead", context, live: "/fragment/dead") { try deadList($0) } }
        router.get("/fragment/dead") { _, _ in try await fragment { try deadList($0) } }
        router.get("/dead/purge") { _, context in try await page("Purge dead letters", "dead", context) { try purgeConfirm($0, context) } }
        router.post("/dead/purge") { request, context in try await purge(request, context) }
        router.get("/dead/:n") { _, context in
            let n = try index(context)
            return try await page("Dead letter \(n)", "dead", context) { try deadShow($0, n: n) }
        }
        router.get("/dead/:n/requeue") { _, context in
            let n = try index(context)
            return try await page("Requeue dead letter \(n)", "dead", context) { try requeueConfirm($0, n: n, context) }
        }
        router.post("/dead/:n/requeue") { request, context in try await requeue(request, context) }

        router.get("/key") { _, context in try await page("Signing key", "key", context) { _ in Pages.key(configuration) } }
    }

    // MARK: - Page plumbing

    /// A whole page: the layout around what `body` renders on a Redis thread.
    func page(_ title: String, _ section: String, _ context: ConsoleContext, live: String? = nil,
              _ body: @escaping @Sendable (any StateRedis) throws -> String) async throws -> Response {
        let started = ContinuousClock.now
        let content: String
        do {
            content = try await bridge.read(body)
        } catch let error as RedisError {
            content = "<p class=\"error\">Redis unavailable: \(HTML.h("\(error)"))</p>"
        } catch let failure as OperationFailure {
            content = "<p class=\"error\">\(HTML.h(failure.description))</p>"
        }
        let html = Pages.layout(title: title, section: section, configuration: configuration,
                                token: security.token(for: context.session), live: live, content: content)
        return Self.timed(Self.html(html), since: started)
    }

    /// The time the server took (reads and rendering), as `Server-Timing` for people and benchmarks.
    static func timed(_ response: Response, since started: ContinuousClock.Instant) -> Response {
        var response = response
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[HTTPField.Name("Server-Timing")!] = "render;dur=\(String(format: "%.1f", ms))"
        return response
    }

    /// The part of a page that refreshes itself.
    func fragment(_ body: @escaping @Sendable (any StateRedis) throws -> String) async throws -> Response {
        let started = ContinuousClock.now
        do {
            return Self.timed(Self.html(try await bridge.read(body)), since: started)
        } catch let error as RedisError {
            return Self.html("<p class=\"error\">Redis unavailable: \(HTML.h("\(error)"))</p>", status: .serviceUnavailable)
        } catch let failure as OperationFailure {
            return Self.html("<p class=\"error\">\(HTML.h(failure.description))</p>", status: .notFound)
        }
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func query(_ request: Request, _ name: String) -> String? {
        guard let value = request.uri.queryParameters[Substring(name)], !value.isEmpty else { return nil }
        return String(value)
    }

    /// An identifier from the path, by the protocol's rules (2.5): anything else is a 400.
    static func identifier(_ context: ConsoleContext, _ name: String) throws -> String {
        let value = try context.parameters.require(name)
        guard isIdentifier(value) else { throw HTTPError(.badRequest, message: "\(name): not an identifier") }
        return value
    }

    static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128 && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !"{}*?[]\\\"".utf8.contains($0) }
    }

    /// A dead letter's address from the path: `N`, or `k:N` on a cluster (`DeadLetterAddress`).
    func index(_ context: ConsoleContext) throws -> DeadLetterAddress {
        guard let text = context.parameters.get("n"), let n = DeadLetterAddress(text.removingPercentEncoding ?? text, layout: layout),
              n.index < 10_000_000 else {
            throw HTTPError(.badRequest, message: "not a dead-letter index")
        }
        return n
    }

    static func eventFilter(_ request: Request) throws -> EventFilter {
        let customer = query(request, "customer"), type = query(request, "type")
        if let customer, !isIdentifier(customer) { throw HTTPError(.badRequest, message: "customer: not an identifier") }
        if let type, type.utf8.count > 64 || !type.utf8.allSatisfy({ (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F }) {
            throw HTTPError(.badRequest, message: "type: an event type such as plan.completed, or a family such as plan.")
        }
        return EventFilter(customer: customer, type: type)
    }

    /// A POST's body (at most `Limits.body` bytes) after the CSRF checks; a refusal is a 403.
    func checkedBody(_ request: Request, form: Bool) async throws -> [UInt8] {
        var request = request
        let buffer = try await request.collectBody(upTo: Limits.body)
        let bytes = Array(buffer.readableBytesView)
        let formToken = form ? Form.parse(bytes)["csrf"] : nil
        if let refusal = security.refusal(request, formToken: formToken) {
            logger.notice("web: refused a POST", metadata: ["path": "\(request.uri.path)", "why": "\(refusal)"])
            throw HTTPError(.forbidden, message: refusal)
        }
        return bytes
    }
}

/// What one request may make the console read from Redis, at most.
enum Limits {
    static let approvals = 200
    static let plans = 100
    static let recentEvents = 500
    static let deadLetters = 50
    static let backfill = 2000
    static let riskReadsPerRequest = 1000
    static let pendingForRisk = 100_000
    static let body = 64 * 1024
    static let resourcesShown = 50
    /// Stream entries read to find one recommendation's conflicts.
    static let conflictScan = 5000
}

/// `application/x-www-form-urlencoded`.
enum Form {
    static func parse(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if let name = parts.first { fields[decode(name)] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }
}

/// Approval id -> risk, for the overview's pending-by-risk counts: an approval's risk never
/// changes, so each is read once, at most `Limits.riskReadsPerRequest` per request.
final class RiskTally: @unchecked Sendable {
    private let lock = NSLock()
    private var riskOf: [String: String] = [:]

    /// Counts by risk of `pending`, reading the risks not yet known; `known` < `pending.count`
    /// while some are still to be read (the next refresh reads more).
    func count(_ pending: [String], layout: StateLayout, redis: any StateRedis) throws -> (byRisk: [String: Int], known: Int) {
        lock.lock()
        let unknown = pending.lazy.filter { self.riskOf[$0] == nil }.prefix(Limits.riskReadsPerRequest)
        let toRead = Array(unknown)
        lock.unlock()
        let stored = try toRead.isEmpty ? [] : StoredRecord.approvals(toRead, layout: layout, redis: redis)
        lock.lock()
        defer { lock.unlock() }
        for (id, approval) in zip(toRead, stored) {
            riskOf[id] = approval?.string("risk_level") ?? "unknown"
        }
        if riskOf.count > pending.count * 2 + 1000 {
            let present = Set(pending)
            riskOf = riskOf.filter { present.contains($0.key) }
        }
        var byRisk: [String: Int] = [:]
        var known = 0
        for id in pending {
            if let risk = riskOf[id] {
                byRisk[risk, default: 0] += 1
                known += 1
            }
        }
        return (byRisk, known)
    }
}
