import CoordinatorDaemon
import Foundation
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

    public var host: String
    public var port: Int
    public var redis: RedisConfiguration
    public var keys: Keys
    public var decisions: Decisions
    /// The daemon's `--reply-prefix`, for the keys decisions are answered on.
    public var replyPrefix: String?
    /// How long a decision waits for the daemon's reply.
    public var decisionTimeout: Double

    public init(host: String, port: Int, redis: RedisConfiguration, keys: Keys, decisions: Decisions,
                replyPrefix: String?, decisionTimeout: Double = 10) {
        self.host = host
        self.port = port
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

    public var modeName: String {
        switch decisions {
        case .readOnly: "read-only"
        case .unsigned: "unsigned"
        case .signed: "signed"
        }
    }
}
