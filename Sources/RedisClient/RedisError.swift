/// Everything the Redis client throws.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Refused, reset, EOF, DNS or connect timeout: hiredis's message, prefixed with the endpoint
    /// ("127.0.0.1:6399: Connection refused"). The connection is broken; the next command on it
    /// reconnects first (with backoff). A command that failed this way may or may not have been
    /// applied by the server; it is never re-sent automatically.
    case connection(String)
    /// An error reply, with Redis's own message ("NOPERM ...", "WRONGPASS ...", "NOSCRIPT ...").
    case server(String)
    /// The reply stream could not be parsed, or a reply did not have the expected shape.
    case protocolError(String)
    /// A configuration URL that could not be understood.
    case invalidURL(String)
    /// The connection (or its thread) was closed or interrupted by us.
    case closed

    /// The first word of a `.server` message ("WRONGPASS", "NOSCRIPT"), else nil.
    public var serverCode: String? {
        guard case .server(let message) = self else { return nil }
        let code = message.prefix { $0 != " " }
        return code.isEmpty ? nil : String(code)
    }

    /// Redis is unreachable, or reachable but refusing writes for now: out of memory
    /// (`OOM`), a replica (`READONLY`), loading its data (`LOADING`), a failover under way
    /// (`MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`), a script running long (`BUSY`), or, to a
    /// connection pinned to one cluster node, a slot that moved or is moving (`MOVED`, `ASK`:
    /// the daemon moves that partition's loops to the new owner). What
    /// failed this way is worth retrying unchanged later; it says nothing about the command.
    public var isOutage: Bool {
        switch self {
        case .connection, .closed: return true
        case .server: return ["OOM", "READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "MOVED", "ASK"].contains(serverCode ?? "")
        case .protocolError, .invalidURL: return false
        }
    }

    /// The error as one line, its kind first.
    public var description: String {
        switch self {
        case .connection(let message): return "Redis connection error: \(message)"
        case .server(let message): return "Redis error reply: \(message)"
        case .protocolError(let message): return "Redis protocol error: \(message)"
        case .invalidURL(let message): return "Invalid Redis URL: \(message)"
        case .closed: return "Redis connection closed"
        }
    }
}
