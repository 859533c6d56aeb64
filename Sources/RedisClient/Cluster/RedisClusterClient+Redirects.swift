import Foundation

// The redirect and retry loop every call runs through, and the interrupt and backoff it
// waits with (RedisClusterClient.swift has the client).

extension RedisClusterClient {
    // MARK: The redirect loop

    enum Outcome {
        case redirect(RedisClusterRedirect, String)
        case wait(String)
    }

    func execute(_ commands: [RedisCommand], slot: Int) throws(RedisClusterError) -> [RedisReply] {
        var replies = [RedisReply](repeating: .null, count: commands.count)
        var pending = Array(commands.indices)
        var askTarget: RedisConfiguration.Endpoint?
        var redirects = 0
        var attempt = 0
        let started = Date()
        while true {
            var node: RedisConfiguration.Endpoint?
            var sent = false
            let got: [RedisReply]
            do throws(RedisError) {
                let target: RedisConfiguration.Endpoint
                if let askTarget { target = askTarget } else { target = try route(slot) }
                node = target
                var batch: [RedisCommand] = []
                batch.reserveCapacity(pending.count * (askTarget == nil ? 1 : 2))
                for index in pending {
                    if askTarget != nil { batch.append(RedisCommand("ASKING")) }
                    batch.append(commands[index])
                }
                got = try roundTrip(batch, to: target, sent: &sent)
            } catch {
                try recover(from: error, node: node, sent: sent, attempt: &attempt, since: started)
                askTarget = nil
                continue
            }
            let outcome = try classify(got, asking: askTarget != nil, pending: &pending, into: &replies, node: node!)
            switch outcome {
            case nil:
                return replies
            case .redirect(let redirect, let message)?:
                redirects += 1
                if redirects > options.maxRedirects { throw .tooManyRedirects(message) }
                switch redirect.kind {
                case .moved:
                    record { $0.moved += 1 }
                    owners[redirect.slot] = redirect.endpoint
                    refreshDue = true
                    askTarget = nil
                case .ask:
                    record { $0.asked += 1 }
                    askTarget = redirect.endpoint
                }
            case .wait(let message)?:
                askTarget = nil
                if message.hasPrefix("CLUSTERDOWN") { refreshDue = true }
                try sleep(attempt: &attempt, since: started, orThrow: .redis(.server(message)))
            }
        }
    }

    /// Sends `batch` to `endpoint` in one round trip. `sent` is set once the connection is open,
    /// so that a failure before it is known to have sent nothing.
    func roundTrip(_ batch: [RedisCommand], to endpoint: RedisConfiguration.Endpoint, sent: inout Bool) throws(RedisError) -> [RedisReply] {
        let connection = self.connection(to: endpoint)
        try activate(connection)
        defer { deactivate() }
        // Connect now, without the connection's own reconnect backoff (up to 2 s, which would
        // keep a call on a dead master's connection after its replica took over): this loop
        // paces its retries itself, and re-routes between them.
        if !connection.isConnected { try connection.reconnect() }
        sent = true
        return try connection.pipeline(batch)
    }

    /// Decides what a failed round trip means: returns (after the backoff) when it is worth
    /// another, else throws.
    func recover(from error: RedisError, node: RedisConfiguration.Endpoint?, sent: Bool,
                         attempt: inout Int, since started: Date) throws(RedisClusterError) {
        switch error {
        case .closed where consumeInterrupt():
            throw .redis(.closed)
        case .connection, .closed:
            // .closed without our interrupt: one the connection still held from an interrupt()
            // that came between two of its calls. Retried as a lost connection.
            break
        default:
            throw .redis(error)
        }
        lastFailed = node
        refreshDue = true
        if sent && !options.resendAfterConnectionLoss { throw .redis(error) }
        record { $0.connectionErrors += 1 }
        try sleep(attempt: &attempt, since: started, orThrow: .redis(error))
    }

    /// Stores the final replies of `pending`, leaves in it those to retry, and says how:
    /// nil when none is left. A redirect wins over a wait, `MOVED` over `ASK`.
    func classify(_ got: [RedisReply], asking: Bool, pending: inout [Int], into replies: inout [RedisReply],
                          node: RedisConfiguration.Endpoint) throws(RedisClusterError) -> Outcome? {
        var retry: [Int] = []
        var outcome: Outcome?
        for (position, index) in pending.enumerated() {
            let reply = got[asking ? 2 * position + 1 : position]
            guard case .error(let message) = reply else {
                replies[index] = reply
                continue
            }
            let code = message.prefix { $0 != " " }
            switch code {
            case "MOVED", "ASK":
                guard let redirect = RedisClusterRedirect(message, answeredBy: node) else {
                    throw .redis(.protocolError("\(node): unreadable redirect \"\(message)\""))
                }
                retry.append(index)
                if case .redirect(let kept, _)? = outcome, kept.kind == .moved { continue }
                outcome = .redirect(redirect, message)
            case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
                retry.append(index)
                if outcome == nil { outcome = .wait(message) }
                if code == "TRYAGAIN" { record { $0.tryAgain += 1 } } else { record { $0.clusterDown += 1 } }
            case "CROSSSLOT":
                throw .crossSlot(message)
            default:
                replies[index] = reply
            }
        }
        pending = retry
        return outcome
    }

    // MARK: Interrupts, backoff, statistics

    /// Marks `connection` as the one `interrupt()` wakes; throws `.closed` if an interrupt is
    /// pending (leaving it pending: the call's top level consumes it and throws `.redis(.closed)`).
    func activate(_ connection: RedisConnection) throws(RedisError) {
        signal.lock()
        defer { signal.unlock() }
        if interruptRequested { throw .closed }
        active = connection
    }

    func interruptPending() -> Bool {
        signal.lock()
        defer { signal.unlock() }
        return interruptRequested
    }

    func deactivate() {
        signal.lock()
        active = nil
        signal.unlock()
    }

    func consumeInterrupt() -> Bool {
        signal.lock()
        defer { signal.unlock() }
        let requested = interruptRequested
        interruptRequested = false
        return requested
    }

    /// Sleeps the next backoff (interruptibly), or throws `error` when the call's retry budget
    /// would be spent.
    func sleep(attempt: inout Int, since started: Date, orThrow error: RedisClusterError) throws(RedisClusterError) {
        let delay = Backoff.jittered(Backoff.pause(after: attempt + 1, first: options.backoffBase, max: options.backoffCap))
        attempt += 1
        if -started.timeIntervalSinceNow + delay > options.retryTimeout { throw error }
        let deadline = Date(timeIntervalSinceNow: delay)
        signal.lock()
        while !interruptRequested {
            if !signal.wait(until: deadline) { break }
        }
        let interrupted = interruptRequested
        interruptRequested = false
        stats.backoffSeconds += delay
        signal.unlock()
        if interrupted { throw .redis(.closed) }
    }

    func record(_ change: (inout Statistics) -> Void) {
        signal.lock()
        change(&stats)
        signal.unlock()
    }
}
