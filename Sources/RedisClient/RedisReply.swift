/// One RESP2 reply.
public enum RedisReply: Sendable, Hashable {
    /// A simple-string reply (`+OK`).
    case status(String)
    /// An error reply: a single command throws it as `RedisError.server`; pipelines and arrays
    /// hold it in place.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk-string reply, binary safe.
    case bulk([UInt8])
    /// A nil reply.
    case null
    /// An array reply (EXEC, EVALSHA tables, blocking pops).
    case array([RedisReply])

    /// A status, or a bulk string decoded as UTF-8 (nil when it is not valid UTF-8).
    public var string: String? {
        switch self {
        case .status(let s): return s
        case .bulk(let b): return decodeUTF8(b)
        default: return nil
        }
    }

    /// The bytes of a bulk string or a status.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let b): return b
        case .status(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// The value of an integer reply.
    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// The elements of an array reply.
    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// Whether the reply is nil (a missing key, a timed-out blocking pop).
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The message of an error reply.
    public var errorMessage: String? {
        if case .error(let m) = self { return m }
        return nil
    }
}

/// Strict UTF-8 decoding: nil when the bytes are not valid UTF-8.

func decodeUTF8(_ bytes: [UInt8]) -> String? {
    let s = String(decoding: bytes, as: UTF8.self)
    return s.utf8.elementsEqual(bytes) ? s : nil
}
