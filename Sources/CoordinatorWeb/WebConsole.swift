import CoordinatorDaemon
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Operations
import RedisClient

/// The request context: the person's session, set (or made) by `ConsoleMiddleware`.
struct ConsoleContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var session = ""
    var newSession = false

    init(source: Source) {
        coreContext = .init(source: source)
    }
}

/// `coordinatord web`: a console for the people who approve and watch, on Hummingbird.
public enum WebConsole {
    /// Serves until the process is told to stop (SIGTERM/SIGINT). `onRunning` is called once the
    /// port is bound, with the port (useful with port 0).
    public static func run(_ configuration: WebConsoleConfiguration, logger: Logger,
                           onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        if let refusal = configuration.refusal { throw WebConsoleError(refusal) }
        // The certificate and key are read before anything starts, so that a wrong path or a
        // key that does not parse stops the command at once, saying which file.
        let server = try configuration.tls.map { try HTTPServerBuilder.tls(.http1(), tlsConfiguration: try Self.tlsConfiguration($0)) } ?? .http1()
        let bridge = RedisBridge(configuration: configuration.redis)
        let tail: any EventFeed
        switch configuration.events {
        case .single: tail = EventTail(configuration: configuration.redis, keys: configuration.keys, bridge: bridge)
        case .partitioned(let partitions): tail = PartitionedTail(configuration: configuration.redis, keys: configuration.keys, partitions: partitions)
        }
        tail.start()
        defer {
            tail.stop()
            bridge.close()
        }
        let console = Console(configuration: configuration, bridge: bridge, tail: tail, logger: logger)
        let router = Router(context: ConsoleContext.self)
        router.add(middleware: ConsoleMiddleware(security: console.security))
        console.routes(router)
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "coordinatord-web"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger)
        try await app.runService()
    }

    /// The server side of TLS from PEM files: the certificate chain (leaf first) and its key;
    /// TLS 1.2 at least.
    static func tlsConfiguration(_ files: WebConsoleConfiguration.TLSFiles) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificate)
        } catch {
            throw WebConsoleError("--tls-cert \(files.certificate): not a readable PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw WebConsoleError("--tls-cert \(files.certificate): no certificate in it") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        } catch {
            throw WebConsoleError("--tls-key \(files.key): not a readable PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}

/// Why the console did not start.
public struct WebConsoleError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Host check, security headers on every answer, and the session cookie.
struct ConsoleMiddleware: RouterMiddleware {
    typealias Context = ConsoleContext
    let security: Security

    /// No inline script or style, nothing from elsewhere, no framing, forms only to this console.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        var context = context
        var response: Response
        if !security.hostAllowed(request) {
            response = Console.text(.misdirectedRequest, "This console answers only to \(security.allowedHosts.sorted().joined(separator: ", ")).")
        } else {
            if let session = Security.session(request) {
                context.session = session
            } else {
                context.session = Security.newSession()
                context.newSession = true
            }
            do {
                response = try await next(request, context)
            } catch let error as HTTPError {
                response = Console.text(error.status, error.body ?? error.status.reasonPhrase)
            }
            if context.newSession {
                response.headers.append(.init(name: .setCookie, value: "\(Security.cookie)=\(context.session); Path=/; HttpOnly; SameSite=Strict\(security.secure ? "; Secure" : "")"))
            }
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        // `same-origin`, not `no-referrer`: with no referrer, Chromium sends `Origin: null` on a form POST.
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
