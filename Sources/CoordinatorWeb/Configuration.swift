import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// How `coordinatord web` was started.
public struct WebConsoleConfiguration: Sendable {
    /// Who may decide, and how a decision proves who made it.
    public enum Decisions: Sendable {
        /// Without `--trust` and `--allow-unsigned`: the console only shows.
        case readOnly
        /// `--allow-unsigned`: behind a proxy that authenticates people and passes their name in
        /// `header`; decisions carry that name, as with `redis-cli`.
        case unsigned(header: String)
        /// `--trust FILE`: the browser signs each decision with its person's own key (PROTOCOL.md
        /// section 10); the console checks the signature against the trust file before it
        /// pushes, so a wrong key is refused at once.
        case signed(Trust)
    }

    /// The certificate chain and private key (PEM files) the console serves HTTPS with.
    public struct TLSFiles: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    /// Where the console's live tail reads events: one stream, or on a Redis Cluster the
    /// per-partition streams `<prefix>:{p<k>}:events:stream`, k in 0..<partitions (PROTOCOL.md
    /// section 11), merged in time order.
    public enum EventSource: Sendable, Equatable {
        case single
        case partitioned(partitions: Int)
    }

    public var host: String
    public var port: Int
    /// HTTPS with these files; nil serves plain HTTP, which `validate` allows on loopback only.
    public var tls: TLSFiles?
    /// Names (`name` or `name:port`) people reach the console by, besides `host:port`: what
    /// `Host` and `Origin` may name (a console on 0.0.0.0 is reached by its DNS name).
    public var serverNames: [String]
    public var events: EventSource
    public var redis: RedisConfiguration
    public var keys: Keys
    public var decisions: Decisions
    /// The daemon's `--reply-prefix`, for the keys decisions are answered on.
    public var replyPrefix: String?
    /// How long a decision waits for the daemon's reply.
    public var decisionTimeout: Double

    public init(host: String, port: Int, redis: RedisConfiguration, keys: Keys, decisions: Decisions,
                replyPrefix: String?, decisionTimeout: Double = 10, tls: TLSFiles? = nil,
                serverNames: [String] = [], events: EventSource = .single) {
        self.host = host
        self.port = port
        self.tls = tls
        self.serverNames = serverNames
        self.events = events
        self.redis = redis
        self.keys = keys
        self.decisions = decisions
        self.replyPrefix = replyPrefix
        self.decisionTimeout = decisionTimeout
    }

    /// Whether `host` is a loopback address (the console serves plain HTTP only there).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Why this configuration must not be served, or nil: plain HTTP only on loopback, since
    /// browsers give WebCrypto (the signing) only to a secure context, which `http://127.0.0.1`
    /// is and `http://host.example` is not, and a session must not cross a network in clear.
    public var refusal: String? {
        if tls == nil, !Self.isLoopback(host) {
            return "--host \(host): off loopback the console serves HTTPS only; give --tls-cert and --tls-key (PEM), or bind to 127.0.0.1 behind a TLS-terminating proxy"
        }
        if case .partitioned(let partitions) = events, !(1...16384).contains(partitions) {
            return "--partitions: 1 to 16384"
        }
        return nil
    }

    /// Where the daemon's state is: under `keys`, or in each partition on a cluster.
    public var layout: StateLayout {
        switch events {
        case .single: StateLayout(keys: keys)
        case .partitioned(let partitions): StateLayout(keys: keys, partitions: partitions)
        }
    }

    public var scheme: String { tls == nil ? "http" : "https" }

    public var modeName: String {
        switch decisions {
        case .readOnly: "read-only"
        case .unsigned: "unsigned"
        case .signed: "signed"
        }
    }
}
