import CHiredis
import Foundation

/// Raw access for `RedisSubscriber`: writes without reading, and reads with a timeout.
extension RedisConnection {
    /// Connects (after the backoff) when there is no open context.
    func ensureConnected() throws(RedisError) {
        _ = try connected()
    }

    /// Writes commands without reading any reply.
    func write(_ commands: [RedisCommand]) throws(RedisError) {
        let context = try connected()
        encoder.reset()
        for command in commands { encoder.append(command) }
        let appended = redisAppendFormattedCommand(context, encoder.bytes, encoder.count)
        if appended != REDIS_OK { throw failure(context, drop: true) }
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw failure(context, drop: true) }
        }
    }

    /// Reads one reply. With a timeout, waits with poll() first and returns nil when nothing
    /// arrived in time (a reply that started arriving is read to its end).
    func readReply(timeout: Double?) throws(RedisError) -> RedisReply? {
        let context = try connected()
        var raw: UnsafeMutableRawPointer?
        if let timeout {
            if redisGetReplyFromReader(context, &raw) != REDIS_OK { throw failure(context, drop: true) }
            if raw == nil {
                var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
                let deadline = Date(timeIntervalSinceNow: max(timeout, 0))
                while true {
                    let remaining = deadline.timeIntervalSinceNow
                    if remaining <= 0 { return nil }
                    let ms = Int32(min((remaining * 1000).rounded(.up), Double(Int32.max)))
                    let ready = poll(&descriptor, 1, ms)
                    if ready > 0 { break }
                    if ready < 0 && errno != EINTR {
                        let message = String(cString: strerror(errno))
                        dropContext()
                        if consumeInterrupt() { throw .closed }
                        throw .connection("\(configuration.endpoint): poll: \(message)")
                    }
                }
            }
        }
        if raw == nil, redisGetReply(context, &raw) != REDIS_OK || raw == nil {
            throw failure(context, drop: true)
        }
        let reply = Self.convert(raw!.assumingMemoryBound(to: redisReply.self))
        freeReplyObject(raw)
        return reply
    }
}
