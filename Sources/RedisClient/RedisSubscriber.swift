/// One Pub/Sub message.
public struct RedisPubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public let channel: String
    /// The matching pattern, for messages received through `psubscribe`.
    public let pattern: String?
    /// The message as published, binary safe.
    public let payload: [UInt8]

    /// A message (the subscriber makes them; tests may too).
    public init(channel: String, pattern: String?, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// A connection in subscribe mode. Same threading rule as `RedisConnection`: one thread at a
/// time, except `interrupt()`.
///
/// When the connection drops, `next` throws `.connection` once; the next call reconnects (with
/// the same backoff as `RedisConnection`) and subscribes again to every channel and pattern.
/// Messages published while disconnected are lost (Pub/Sub keeps nothing).
public final class RedisSubscriber: @unchecked Sendable {
    private let connection: RedisConnection
    private var channels: [String] = []
    private var patterns: [String] = []
    private var pending: [RedisPubSubMessage] = []
    private var pendingHead = 0
    private var subscribedGeneration: Int

    /// Connects (with AUTH and SELECT); throws when the server cannot be reached.
    public init(configuration: RedisConfiguration) throws(RedisError) {
        connection = try RedisConnection(configuration: configuration)
        subscribedGeneration = connection.generation
    }

    /// Where and how the subscriber connects.
    public var configuration: RedisConfiguration { connection.configuration }

    /// SUBSCRIBE, waiting for the confirmations.
    public func subscribe(_ channels: [String]) throws(RedisError) {
        try restoreIfReconnected()
        try subscribe(kind: "SUBSCRIBE", channels)
        self.channels.append(contentsOf: channels.filter { !self.channels.contains($0) })
    }

    /// PSUBSCRIBE, waiting for the confirmations.
    public func psubscribe(_ patterns: [String]) throws(RedisError) {
        try restoreIfReconnected()
        try subscribe(kind: "PSUBSCRIBE", patterns)
        self.patterns.append(contentsOf: patterns.filter { !self.patterns.contains($0) })
    }

    /// The next message, or nil when none arrives within `timeout` seconds.
    public func next(timeout: Double) throws(RedisError) -> RedisPubSubMessage? {
        if let message = popPending() { return message }
        try restoreIfReconnected()
        if let message = popPending() { return message }
        let deadline = ContinuousClock.now + .milliseconds(Int64(max(timeout, 0) * 1000))
        while true {
            let remaining = deadline - ContinuousClock.now
            let seconds = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) / 1e18
            guard let reply = try connection.readReply(timeout: max(seconds, 0)) else { return nil }
            if let message = try Self.message(from: reply) { return message }
        }
    }

    /// Thread-safe: wakes a `next` blocked in another thread (it throws `.closed`).
    public func interrupt() {
        connection.interrupt()
    }

    /// Closes the connection. Idempotent.
    public func close() {
        connection.close()
    }

    private func subscribe(kind: String, _ names: [String]) throws(RedisError) {
        if names.isEmpty { return }
        try connection.write([RedisCommand(kind, arguments: names)])
        let confirmation = kind.lowercased()
        var waiting = names.count
        while waiting > 0 {
            guard let reply = try connection.readReply(timeout: nil) else { continue }
            if let message = try Self.message(from: reply) {
                pending.append(message)
            } else if let items = reply.array, items.first?.string == confirmation {
                waiting -= 1
            } else if case .error(let message) = reply {
                throw .server(message)
            }
        }
    }

    /// After a reconnect, subscribes again to everything.
    private func restoreIfReconnected() throws(RedisError) {
        try connection.ensureConnected()
        if connection.generation == subscribedGeneration { return }
        try subscribe(kind: "SUBSCRIBE", channels)
        try subscribe(kind: "PSUBSCRIBE", patterns)
        subscribedGeneration = connection.generation
    }

    private func popPending() -> RedisPubSubMessage? {
        guard pendingHead < pending.count else { return nil }
        let message = pending[pendingHead]
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        }
        return message
    }

    /// A message, or nil for confirmations and other control replies.
    private static func message(from reply: RedisReply) throws(RedisError) -> RedisPubSubMessage? {
        guard let items = reply.array, let kind = items.first?.string else {
            if case .error(let message) = reply { throw .server(message) }
            return nil
        }
        switch kind {
        case "message" where items.count == 3:
            guard let channel = items[1].string, let payload = items[2].bytes else { break }
            return RedisPubSubMessage(channel: channel, pattern: nil, payload: payload)
        case "pmessage" where items.count == 4:
            guard let pattern = items[1].string, let channel = items[2].string, let payload = items[3].bytes else { break }
            return RedisPubSubMessage(channel: channel, pattern: pattern, payload: payload)
        default:
            return nil
        }
        throw .protocolError("unexpected Pub/Sub reply \(reply)")
    }
}
