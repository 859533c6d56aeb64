/// One RESP2 reply.
public enum RedisReply: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
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

    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

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
