import CHiredis
import Foundation

/// Blocking pops and moves: they hold the connection's thread until an element arrives or the
/// timeout passes (or `interrupt()`).
extension RedisConnection {
    /// `BLMOVE source destination RIGHT LEFT timeout`: the moved element, or nil on timeout.
    /// A timeout of 0 blocks until an element arrives (or `interrupt()`).
    public func blockingMove(from source: String, to destination: String, timeout: Double) throws(RedisError) -> [UInt8]? {
        switch try send(RedisCommand("BLMOVE", source, destination, "RIGHT", "LEFT", timeout)) {
        case .bulk(let bytes): return bytes
        case .null: return nil
        case let other: throw .protocolError("BLMOVE: unexpected reply \(other)")
        }
    }

    /// What `blockingMove(from:to:timeout:atMost:)` found.
    public enum BoundedMove: Sendable, Equatable {
        /// The element moved, at most the bound long.
        case element([UInt8])
        /// An element of this many bytes was moved, and not read: the connection was dropped
        /// instead (it reconnects on the next call), so the element stays where it was moved.
        case oversized(Int)
        /// Nothing arrived within the timeout.
        case none
    }

    /// `BLMOVE source destination RIGHT LEFT timeout`, reading the moved element only when it
    /// is at most `maxBytes` long: the reply's length is peeked at on the socket before hiredis
    /// reads it, so that an element of any size never has to be held in memory here.
    public func blockingMove(from source: String, to destination: String, timeout: Double,
                             atMost maxBytes: Int) throws(RedisError) -> BoundedMove {
        let context = try connected(probe: true)
        encoder.reset()
        encoder.append(RedisCommand("BLMOVE", source, destination, "RIGHT", "LEFT", timeout))
        if redisAppendFormattedCommand(context, encoder.bytes, encoder.count) != REDIS_OK {
            throw failure(context, drop: true)
        }
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw failure(context, drop: true) }
        }
        // Nothing of an earlier reply is buffered (every exchange reads all its replies), so the
        // socket's next bytes are this reply's: "$<length>\r\n" for an element.
        if let length = Self.peekBulkLength(context.pointee.fd), length > maxBytes {
            dropContext()
            return .oversized(length)
        }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil { throw failure(context, drop: true) }
        let reply = Self.convert(raw!.assumingMemoryBound(to: redisReply.self))
        freeReplyObject(raw)
        switch reply {
        case .bulk(let bytes): return .element(bytes)
        case .null: return .none
        case .error(let message): throw .server(message)
        case let other: throw .protocolError("BLMOVE: unexpected reply \(other)")
        }
    }

    /// The length announced by a bulk reply waiting on `fd` ("$123\r\n"), read without
    /// consuming it; nil for any other reply, or when the socket fails (hiredis then reports it).
    private static func peekBulkLength(_ fd: Int32) -> Int? {
        var head = [UInt8](repeating: 0, count: 24)
        while true {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, -1) < 0 {
                if errno == EINTR { continue }
                return nil
            }
            let n = head.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
            if n <= 0 { return nil }
            guard head[0] == UInt8(ascii: "$") else { return nil }
            if let end = head[..<n].firstIndex(of: UInt8(ascii: "\r")) {
                return Int(String(decoding: head[1..<end], as: UTF8.self))
            }
            if n == head.count { return nil }
            // The header came in pieces: wait for the rest of its line.
            usleep(100)
        }
    }

    /// `BLPOP keys... timeout`: the key and the popped element, or nil on timeout.
    public func blockingPop(_ keys: [String], timeout: Double) throws(RedisError) -> (key: String, value: [UInt8])? {
        var args: [any RedisArgument] = keys
        args.append(timeout)
        let reply = try send(RedisCommand("BLPOP", arguments: args))
        if reply.isNull { return nil }
        guard let pair = reply.array, pair.count == 2, let key = pair[0].string, let value = pair[1].bytes else {
            throw .protocolError("BLPOP: unexpected reply \(reply)")
        }
        return (key, value)
    }
}
