import ArgumentParser
import CoordinatorDaemon
import CoordinatorWeb
import Foundation
import Logging
import RedisClient

struct Web: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the web console: overview, approvals, plans, live events, dead letters.",
        discussion: """
            Read-only by default. With --trust FILE, decisions are signed in the browser with each \
            person's own key (imported there from `coordinatord keys generate`'s file). With \
            --allow-unsigned (for a console behind a proxy that authenticates people), decisions \
            carry the user the proxy names in --user-header. Plain HTTP is served on loopback only; \
            elsewhere give --tls-cert and --tls-key (HTTPS). On a Redis Cluster (--cluster, or a \
            redis+cluster:// URL) every page reads the daemons' partitions and the live tail merges \
            the per-partition event streams.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Port to serve on (env COORD_WEB_PORT).") var port: Int?
    @Option(help: "Address to bind: loopback for plain HTTP, any with --tls-cert and --tls-key (env COORD_WEB_HOST).") var host: String?
    @Option(help: "PEM certificate chain (leaf first) to serve HTTPS with; needs --tls-key (env COORD_WEB_TLS_CERT).") var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert (env COORD_WEB_TLS_KEY).") var tlsKey: String?
    @Option(help: "A name people reach the console by (name or name:port), besides --host; repeatable. Requests naming another host are refused.") var serverName: [String] = []
    @OptionGroup var layout: LayoutOptions
    @Option(help: "Trust file: decisions are signed in the browser and checked against it (env COORD_TRUST).") var trust: String?
    @Flag(help: "Without --trust: allow unsigned decisions and dead-letter actions by the user a proxy names.") var allowUnsigned = false
    @Option(help: "With --allow-unsigned: the header the authenticating proxy puts the user's name in.") var userHeader = "X-Forwarded-User"
    @Option(help: "The daemon's --reply-prefix, for decisions' reply keys (env COORD_REPLY_PREFIX).") var replyPrefix: String?
    @Option(help: "Seconds a decision waits for the daemon's answer.") var decisionTimeout: Double = 10

    private func env(_ name: String) -> String? {
        Environment.value("COORD_" + name)
    }

    var resolvedHost: String { host ?? env("WEB_HOST") ?? "127.0.0.1" }
    var resolvedPort: Int? { port ?? env("WEB_PORT").flatMap(Int.init) ?? (env("WEB_PORT") == nil ? 8080 : nil) }
    var resolvedTrust: String? { trust ?? env("TRUST") }
    var resolvedTLS: WebConsoleConfiguration.TLSFiles? {
        guard let certificate = tlsCert ?? env("WEB_TLS_CERT"), let key = tlsKey ?? env("WEB_TLS_KEY") else { return nil }
        return .init(certificate: certificate, key: key)
    }

    /// The Redis configuration, clustered on a Redis Cluster (`LayoutOptions`).
    func redisConfiguration() throws -> RedisConfiguration {
        let configuration = try RedisConfiguration(url: connection.url)
        return layout.isCluster(url: connection.url) ? try configuration.clustered() : configuration
    }

    /// On a cluster, the daemons' partitions: the pages read them, the live tail their streams.
    var partitions: Int { Environment.partitions(layout.partitions) }

    func validate() throws {
        guard let port = resolvedPort, (0...65535).contains(port) else { throw ValidationError("--port: 0 to 65535") }
        if ((tlsCert ?? env("WEB_TLS_CERT")) == nil) != ((tlsKey ?? env("WEB_TLS_KEY")) == nil) {
            throw ValidationError("--tls-cert and --tls-key: give both or neither")
        }
        guard resolvedTLS != nil || WebConsoleConfiguration.isLoopback(resolvedHost) else {
            throw ValidationError("--host: plain HTTP is served on loopback only (browsers sign only in a secure context, which http://127.0.0.1 is and a remote http:// page is not, and a session must not cross a network in clear); give --tls-cert and --tls-key, or put a TLS-terminating proxy in front of a loopback console")
        }
        for name in serverName where name.isEmpty || name.utf8.count > 255 || name.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) {
            throw ValidationError("--server-name \(name): a host name, or name:port")
        }
        guard (1...16384).contains(partitions) else { throw ValidationError("--partitions: 1 to 16384") }
        do {
            _ = try redisConfiguration()
        } catch {
            throw ValidationError("--cluster: \(error)")
        }
        if resolvedTrust != nil, allowUnsigned { throw ValidationError("--allow-unsigned: not with --trust (decisions are then signed)") }
        guard HTTPHeaderName.isToken(userHeader) else { throw ValidationError("--user-header: a header name") }
        guard decisionTimeout > 0, decisionTimeout <= 300 else { throw ValidationError("--decision-timeout: between 0 and 300 seconds") }
    }

    func run() throws {
        LoggingSystem.bootstrap { LogLineHandler(label: $0, format: .text) }
        let logger = Logger(label: "coordinatord.web")
        let decisions: WebConsoleConfiguration.Decisions
        if let path = resolvedTrust {
            do {
                decisions = .signed(try Trust.load(path: path))
            } catch {
                Terminal.error("--trust: \(error)")
                throw ExitCode(1)
            }
        } else {
            decisions = allowUnsigned ? .unsigned(header: userHeader) : .readOnly
        }
        let redis = try redisConfiguration()
        let configuration = WebConsoleConfiguration(
            host: resolvedHost, port: resolvedPort ?? 8080, redis: redis,
            keys: connection.keys, decisions: decisions,
            replyPrefix: replyPrefix ?? env("REPLY_PREFIX"), decisionTimeout: decisionTimeout,
            tls: resolvedTLS, serverNames: serverName,
            events: redis.isCluster ? .partitioned(partitions: partitions) : .single)
        let finished = DispatchSemaphore(value: 0)
        let failure = FailureBox()
        let host = resolvedHost
        Task {
            do {
                try await WebConsole.run(configuration, logger: logger) { port in
                    let shownHost = host.contains(":") ? "[\(host)]" : host
                    let events = redis.isCluster ? ", events from \(partitions) partition streams" : ""
                    Terminal.note("coordinatord web: serving \(configuration.scheme)://\(shownHost):\(port)/ (\(configuration.modeName)\(events))")
                }
            } catch {
                failure.set(error)
            }
            finished.signal()
        }
        finished.wait()
        if let error = failure.error {
            Terminal.error("web: \(error)")
            throw ExitCode(1)
        }
    }
}

/// An error handed from the server's task to the command's thread.
private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ error: any Error) { lock.lock(); stored = error; lock.unlock() }
}

/// RFC 9110 field names.
enum HTTPHeaderName {
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D || $0 == 0x5F }
    }
}
