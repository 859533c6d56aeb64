import CHiredis
import Foundation

/// A blocking connection to one Redis server (hiredis underneath, RESP2).
///
/// **Threading.** A connection is used by one thread at a time: its owner must guarantee that
/// no two threads call into it concurrently (it is `@unchecked Sendable` only so that it can be
/// handed to, and interrupted from, another thread). The one exception is `interrupt()`, which
/// any thread may call at any time. Never call it from Swift's cooperative thread pool: every
/// call blocks its thread; use `RedisConnectionThread` from async code.
///
/// **Failures.** An error reply is thrown as `.server(message)` by `send` (and returned in
/// place by `pipeline`). A connection-level failure frees the context and throws
/// `.connection`; nothing is re-sent (the server may have applied the command). The next call
/// reconnects first (connect + AUTH + SELECT); consecutive failed reconnects sleep a backoff
/// before trying again (50 ms doubling, capped at 2 s, reset on success), so a caller's retry
/// loop backs off without spinning.
public final class RedisConnection: @unchecked Sendable {
    /// Where and how this connection connects (and reconnects).
    public let configuration: RedisConfiguration

    private var context: UnsafeMutablePointer<redisContext>?
    private var closed = false
    private var failedReconnects = 0
    /// Incremented on every successful connect: which socket commands go over now. The
    /// subscriber re-subscribes when it changes; a `WAIT` proves the replication of writes only
    /// on the socket they went over.
    public private(set) var generation = 0
    private var scripts: [String: String] = [:]
    let encoder = RESPEncoder()

    /// Guards `activeFD` and `interruptRequested`, the only state other threads touch.
    private let signal = NSCondition()
    private var activeFD: Int32 = -1
    private var interruptRequested = false
    /// Set by `interrupt(permanently: true)`: every later call throws `.closed`.
    private var terminated = false

    /// Connects, authenticates (user + password, or password alone) and SELECTs the database.
    public init(configuration: RedisConfiguration) throws(RedisError) {
        self.configuration = configuration
        context = try connectContext()
        generation = 1
    }

    /// A connection that connects on its first command (used by `RedisConnectionThread`).
    init(lazy configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    deinit {
        if let context { redisFree(context) }
    }

    // MARK: Commands

    /// Sends one command and waits for its reply. An error reply is thrown as `.server`.
    public func send(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        let context = try connected(probe: true)
        encoder.reset()
        encoder.append(command)
        let reply = try exchange(context, expecting: 1) { _, reply in reply }
        if case .error(let message) = reply { throw .server(message) }
        return reply
    }

    /// `send(RedisCommand(name, args...))`
    public func send(_ name: String, _ args: any RedisArgument...) throws(RedisError) -> RedisReply {
        try send(RedisCommand(name, arguments: args))
    }

    /// Sends all commands in one write, then reads all replies (in order). Error replies come back
    /// as `.error` values in place; only a connection-level failure throws. An EVALSHA answered
    /// with NOSCRIPT whose source is known (`register(_:)` or any `RedisScript` created in this
    /// process) is retried after SCRIPT LOAD in a second round trip, and its reply replaces the
    /// error.
    public func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        if commands.isEmpty { return [] }
        let context = try connected(probe: true)
        encoder.reset()
        for command in commands { encoder.append(command) }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        var retry: [Int] = []
        try exchange(context, expecting: commands.count) { index, reply in
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT"), Self.isEvalSHA(commands[index]) {
                retry.append(index)
            }
            replies.append(reply)
        }
        if !retry.isEmpty {
            try reloadAndRetry(retry, of: commands, into: &replies)
        }
        return replies
    }

    /// Runs a script with EVALSHA; on NOSCRIPT, SCRIPT LOAD and EVALSHA again (once, in one round
    /// trip). An error reply is thrown as `.server`.
    public func run(_ script: RedisScript, keys: [any RedisArgument], args: [any RedisArgument]) throws(RedisError) -> RedisReply {
        register(script)
        let command = script.command(keys: keys, args: args)
        do {
            return try send(command)
        } catch .server(let message) where message.hasPrefix("NOSCRIPT") {
            let replies = try pipeline([RedisCommand("SCRIPT", "LOAD", script.source), command])
            // A source that does not compile: report that, not the retry's NOSCRIPT.
            if case .error(let message) = replies[0] { throw .server(message) }
            if case .error(let message) = replies[1] { throw .server(message) }
            return replies[1]
        }
    }

    /// Remembers a script's source so NOSCRIPT replies to its EVALSHA can be repaired.
    public func register(_ script: RedisScript) {
        scripts[script.sha1] = script.source
    }

    // MARK: Connection state

    /// True while a context is open and not known to be broken.
    public var isConnected: Bool { context != nil }

    /// Drops the current context (if any) and connects anew now, without backoff.
    public func reconnect() throws(RedisError) {
        dropContext()
        closed = false
        consumeInterrupt()
        signal.lock()
        let isTerminated = terminated
        signal.unlock()
        if isTerminated { throw .closed }
        do {
            context = try connectContext()
            failedReconnects = 0
            generation += 1
        } catch {
            failedReconnects += 1
            throw error
        }
    }

    /// Frees the context. Idempotent; later commands throw `.closed` (until `reconnect()`).
    public func close() {
        dropContext()
        closed = true
    }

    /// Thread-safe: shuts the socket down so that a call blocked in another thread (BLMOVE, a
    /// backoff sleep) returns at once. The interrupted call, or the next call if none was
    /// running, throws `.closed`; the call after that reconnects.
    public func interrupt() {
        interrupt(permanently: false)
    }

    /// `interrupt()`, and with `permanently` every later call throws `.closed` too.
    func interrupt(permanently: Bool) {
        signal.lock()
        interruptRequested = true
        if permanently { terminated = true }
        if activeFD >= 0 { _ = shutdown(activeFD, Int32(SHUT_RDWR)) }
        signal.broadcast()
        signal.unlock()
    }

    // MARK: Internals

    /// The open context, reconnecting (after the backoff) when the last one broke.
    ///
    /// With `probe`, an idle request/response connection is first checked with a zero-timeout
    /// poll(): if the socket is readable (the server closed it, e.g. after a restart, or sent
    /// something unasked) it is replaced before anything is sent, so no command is lost to a
    /// connection that was already dead.
    func connected(probe: Bool = false) throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if consumeInterrupt() {
            dropContext()
            throw .closed
        }
        if let context {
            if !probe || Self.isIdleAndAlive(context) { return context }
            dropContext()
        }
        if closed { throw .closed }
        try backoff()
        do {
            let context = try connectContext()
            self.context = context
            failedReconnects = 0
            generation += 1
            return context
        } catch {
            failedReconnects += 1
            throw error
        }
    }

    @discardableResult
    func consumeInterrupt() -> Bool {
        signal.lock()
        defer { signal.unlock() }
        let requested = interruptRequested || terminated
        interruptRequested = false
        return requested
    }

    private func backoff() throws(RedisError) {
        guard failedReconnects > 0 else { return }
        let delay = Backoff.pause(after: failedReconnects, first: 0.05, max: 2)
        let deadline = Date(timeIntervalSinceNow: delay)
        signal.lock()
        while !interruptRequested && !terminated {
            if !signal.wait(until: deadline) { break }
        }
        let interrupted = interruptRequested || terminated
        interruptRequested = false
        signal.unlock()
        if interrupted { throw .closed }
    }

    func dropContext() {
        guard let context else { return }
        signal.lock()
        activeFD = -1
        signal.unlock()
        redisFree(context)
        self.context = nil
    }

    /// Connect, zero socket timeouts, keep-alive, AUTH, SELECT. Frees the context on failure.
    private func connectContext() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        let endpoint = configuration.endpoint
        let seconds = max(configuration.connectTimeout, 0.001)
        let tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(clamping: port), tv)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, tv)
        }
        guard let context = made else { throw .connection("\(endpoint): cannot allocate a hiredis context") }
        if context.pointee.err != 0 {
            let message = Self.errorString(context)
            redisFree(context)
            throw .connection("\(endpoint): \(message)")
        }
        // Close-on-exec (hiredis opens it without): a child this process spawns must not hold
        // the socket, or the server keeps the connection after `close()` while the child lives.
        _ = fcntl(context.pointee.fd, F_SETFD, fcntl(context.pointee.fd, F_GETFD) | FD_CLOEXEC)
        signal.lock()
        activeFD = context.pointee.fd
        signal.unlock()
        do throws(RedisError) {
            // Commands have no socket timeout: blocking commands carry their own, and a fired
            // SO_RCVTIMEO would leave the hiredis context unusable.
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            let size = socklen_t(MemoryLayout<timeval>.size)
            _ = setsockopt(context.pointee.fd, SOL_SOCKET, SO_RCVTIMEO, &zero, size)
            _ = setsockopt(context.pointee.fd, SOL_SOCKET, SO_SNDTIMEO, &zero, size)
            if case .tcp = endpoint, configuration.keepAlive, redisEnableKeepAlive(context) != REDIS_OK {
                throw RedisError.connection("\(endpoint): \(Self.errorString(context))")
            }
            var setup: [RedisCommand] = []
            if let password = configuration.password {
                if let username = configuration.username {
                    setup.append(RedisCommand("AUTH", username, password))
                } else {
                    setup.append(RedisCommand("AUTH", password))
                }
            }
            if configuration.database != 0 {
                setup.append(RedisCommand("SELECT", configuration.database))
            }
            if !setup.isEmpty {
                encoder.reset()
                for command in setup { encoder.append(command) }
                var firstError: String?
                try exchange(context, expecting: setup.count, dropOnFailure: false) { _, reply in
                    if case .error(let message) = reply, firstError == nil { firstError = message }
                }
                if let firstError { throw RedisError.server(firstError) }
            }
            return context
        } catch {
            signal.lock()
            activeFD = -1
            signal.unlock()
            redisFree(context)
            if consumeInterrupt() { throw .closed }
            throw error
        }
    }

    /// Writes the encoder's buffer, then reads `count` replies, handing each to `body` in order.
    /// On a connection-level failure the context is dropped and the error thrown.
    private func exchange<R>(
        _ context: UnsafeMutablePointer<redisContext>, expecting count: Int, dropOnFailure: Bool = true,
        _ body: (Int, RedisReply) -> R
    ) throws(RedisError) -> R {
        let appended = redisAppendFormattedCommand(context, encoder.bytes, encoder.count)
        if appended != REDIS_OK { throw failure(context, drop: dropOnFailure) }
        var result: R?
        for index in 0..<count {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
                throw failure(context, drop: dropOnFailure)
            }
            let reply = Self.convert(raw!.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            result = body(index, reply)
        }
        return result!
    }

    func failure(_ context: UnsafeMutablePointer<redisContext>, drop: Bool) -> RedisError {
        let protocolFailure = context.pointee.err == REDIS_ERR_PROTOCOL
        let message = Self.errorString(context)
        if drop { dropContext() }
        if consumeInterrupt() { return .closed }
        if protocolFailure { return .protocolError("\(configuration.endpoint): \(message)") }
        return .connection("\(configuration.endpoint): \(message)")
    }

    private func reloadAndRetry(_ retry: [Int], of commands: [RedisCommand], into replies: inout [RedisReply]) throws(RedisError) {
        var loads: [String] = []
        var resend: [Int] = []
        for index in retry {
            let sha = String(decoding: commands[index].arguments[1], as: UTF8.self)
            guard let source = scripts[sha] ?? ScriptRegistry.shared.source(sha1: sha) else { continue }
            if !loads.contains(source) { loads.append(source) }
            resend.append(index)
        }
        if resend.isEmpty { return }
        let context = try connected()
        encoder.reset()
        for source in loads { encoder.append(RedisCommand("SCRIPT", "LOAD", source)) }
        for index in resend { encoder.append(commands[index]) }
        var loadErrors: [String: RedisReply] = [:]
        try exchange(context, expecting: loads.count + resend.count) { position, reply in
            if position < loads.count {
                if case .error = reply { loadErrors[loads[position]] = reply }
            } else {
                replies[resend[position - loads.count]] = reply
            }
        }
        // A source that did not compile: its commands get the SCRIPT LOAD error, not NOSCRIPT.
        if !loadErrors.isEmpty {
            for index in resend {
                let sha = String(decoding: commands[index].arguments[1], as: UTF8.self)
                if let source = scripts[sha] ?? ScriptRegistry.shared.source(sha1: sha), let error = loadErrors[source] {
                    replies[index] = error
                }
            }
        }
    }

    private static func isIdleAndAlive(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    private static func isEvalSHA(_ command: RedisCommand) -> Bool {
        guard command.arguments.count >= 2, let name = command.arguments.first, name.count == 7 else { return false }
        return name.elementsEqual("EVALSHA".utf8) { $0 & 0xDF == $1 }
    }

    static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: &context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "unknown error" : String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Copies a hiredis reply (the caller frees it).
    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(r.len == 0 ? [] : Array(UnsafeRawBufferPointer(start: r.str, count: r.len)))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_STATUS:
            return .status(r.len == 0 ? "" : String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(r.len == 0 ? "" : String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            guard r.elements > 0, let elements = r.element else { return .array([]) }
            var items: [RedisReply] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = elements[i] { items.append(convert(element)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .error("unknown hiredis reply type \(r.type)")
        }
    }
}
