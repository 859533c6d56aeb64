import Foundation

// The client's retry bounds and what it counts (RedisClusterClient.swift has the client).

extension RedisClusterClient {
    /// Bounds and pacing of the redirect and retry loop.
    public struct Options: Sendable, Equatable {
        /// Redirects (`MOVED` + `ASK`) followed by one call before it throws `.tooManyRedirects`.
        public var maxRedirects = 16
        /// Seconds one call may spend retrying `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` and connection
        /// errors (a failover with `cluster-node-timeout` 1 s takes 2 to 3 s).
        public var retryTimeout: Double = 10
        /// The first backoff (seconds); it doubles per retry up to `backoffCap`, and each sleep is
        /// drawn uniformly from its upper half (jitter, so clients do not retry in step).
        public var backoffBase: Double = 0.01
        /// The longest single backoff (seconds).
        public var backoffCap: Double = 0.5
        /// Re-send a command whose connection failed after it may have been written. Redis may
        /// have applied it, so with this on a command can be applied twice: right for idempotent
        /// commands and scripts (the daemon's commits are idempotent by message identity), wrong
        /// for a bare `LPUSH`/`INCR` whose repetition matters. Off: such a failure is thrown as
        /// `.redis(.connection)` (a command that surely was not sent is always retried).
        public var resendAfterConnectionLoss = true
        /// The shortest time between two topology refreshes caused by `MOVED` (a resharding sends
        /// one `MOVED` per slot; a refresh per `MOVED` would be a storm of `CLUSTER SHARDS`).
        public var minimumRefreshInterval: Double = 0.1

        /// The defaults.
        public init() {}
    }

    /// What this client met, since it was made (for tests, logs and metrics).
    public struct Statistics: Sendable, Equatable {
        /// `MOVED` replies followed.
        public var moved = 0
        /// `ASK` replies followed.
        public var asked = 0
        /// `TRYAGAIN` replies waited out.
        public var tryAgain = 0
        /// `CLUSTERDOWN` (and `LOADING`) replies waited out.
        public var clusterDown = 0
        /// Connection errors retried.
        public var connectionErrors = 0
        /// Topology refreshes that succeeded.
        public var topologyRefreshes = 0
        /// Topology refreshes that found no node to answer (routing went on with the old map).
        public var topologyRefreshFailures = 0
        /// Blocking commands re-issued by `blocking(_:timeout:slot:)` after `UNBLOCKED` or a
        /// connection error (those re-issued after `MOVED` count in `moved`).
        public var blockingReissues = 0
        /// Time spent in backoff sleeps, seconds.
        public var backoffSeconds = 0.0
    }
}
