/// Everything `RedisClusterClient` throws.
public enum RedisClusterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The keys of one command, or of one pipeline, are in different slots (Redis's `CROSSSLOT`
    /// reply, or the client's own check of a pipeline before sending it). A bug in the caller's
    /// key layout: never retried, and retrying would not help.
    case crossSlot(String)
    /// More redirects (`MOVED`, `ASK`) than `Options.maxRedirects` for one call: the cluster's
    /// nodes disagree about who serves the slot, for longer than a migration step takes. The
    /// last redirect's message.
    case tooManyRedirects(String)
    /// The command cannot be routed: it names no key and no slot was given, or the call was
    /// malformed (a blocking helper without a finite timeout).
    case unroutable(String)
    /// The error one node's connection gave, unchanged: error replies other than the cluster's
    /// own, and outages (`.connection`, `TRYAGAIN`, `CLUSTERDOWN`) that outlasted the retry
    /// budget. `.redis(.closed)` after `interrupt()`.
    case redis(RedisError)

    /// As `RedisError.isOutage` for `.redis`; a redirect storm is an outage too (the cluster is
    /// reconfiguring). A `CROSSSLOT` or an unroutable command is not.
    public var isOutage: Bool {
        switch self {
        case .redis(let error): return error.isOutage
        case .tooManyRedirects: return true
        case .crossSlot, .unroutable: return false
        }
    }

    /// The error as one line, its kind first.
    public var description: String {
        switch self {
        case .crossSlot(let message): return "Redis Cluster: keys in different slots (a bug in the key layout): \(message)"
        case .tooManyRedirects(let message): return "Redis Cluster: too many redirects, the last: \(message)"
        case .unroutable(let message): return "Redis Cluster: cannot route: \(message)"
        case .redis(let error): return error.description
        }
    }
}
