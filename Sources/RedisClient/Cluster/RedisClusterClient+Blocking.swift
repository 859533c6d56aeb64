import Foundation

// Blocking commands in a cluster: re-issued with the time left after UNBLOCKED, a lost
// connection or a MOVED (RedisClusterClient.swift has the client).

extension RedisClusterClient {
    /// Sends a blocking command with a finite timeout and, until that much time has passed,
    /// re-issues it (with the time left) when it comes back `UNBLOCKED` (its node stopped being a
    /// master) or after a connection error; after `MOVED` (the slot moved while it waited) the
    /// redirect loop re-issues it on the new owner. `make` builds the command for a timeout in
    /// seconds. Returns the reply, or `.null` once the time is up.
    ///
    /// What a re-issue means for the caller: a BLMOVE whose connection broke may have moved its
    /// element already (into the caller's in-flight list, where recovery finds it); an UNBLOCKED
    /// or MOVED one did nothing.
    public func blocking(_ make: (Double) -> RedisCommand, timeout: Double, slot: Int) throws(RedisClusterError) -> RedisReply {
        guard timeout > 0, timeout.isFinite else {
            throw .unroutable("a blocking command in a cluster needs a finite timeout > 0, not \(timeout)")
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        var reissue = false
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return .null }
            if reissue { record { $0.blockingReissues += 1 } }
            reissue = true
            do {
                return try send(make(max(0.01, (left * 1000).rounded(.up) / 1000)), slot: slot)
            } catch .redis(.server(let message)) where message.hasPrefix("UNBLOCKED") {
                refreshDue = true
            } catch .redis(.connection) {
                refreshDue = true
            }
        }
    }

    /// `BLMOVE source destination RIGHT LEFT timeout` through `blocking`: the moved element, or
    /// nil when nothing came within `timeout` seconds (finite). Both keys must share a slot.
    public func blockingMove(from source: String, to destination: String, timeout: Double) throws(RedisClusterError) -> [UInt8]? {
        let reply = try blocking({ RedisCommand("BLMOVE", source, destination, "RIGHT", "LEFT", $0) },
                                 timeout: timeout, slot: RedisClusterSlot.of(source))
        switch reply {
        case .bulk(let bytes): return bytes
        case .null: return nil
        case let other: throw .redis(.protocolError("BLMOVE: unexpected reply \(other)"))
        }
    }

    /// `BRPOP keys... timeout` through `blocking`: the key and the element popped from its tail,
    /// or nil after `timeout` seconds (finite). The keys must share a slot.
    public func blockingPop(_ keys: [String], timeout: Double) throws(RedisClusterError) -> (key: String, value: [UInt8])? {
        guard let first = keys.first else { throw .unroutable("BRPOP needs a key") }
        let reply = try blocking({ RedisCommand("BRPOP", arguments: keys + [$0]) }, timeout: timeout, slot: RedisClusterSlot.of(first))
        if reply.isNull { return nil }
        guard let pair = reply.array, pair.count == 2, let key = pair[0].string, let value = pair[1].bytes else {
            throw .redis(.protocolError("BRPOP: unexpected reply \(reply)"))
        }
        return (key, value)
    }
}

extension RedisClusterClient {
    /// `BLMOVE source destination RIGHT LEFT timeout`, reading the element only when it is at
    /// most `maxBytes` long (`RedisConnection.blockingMove(from:to:timeout:atMost:)`): an
    /// element over it stays at the head of `destination`, unread, and only its length comes
    /// back. Re-issued with the time left as `blocking` does: after `MOVED` (the slot's owner is
    /// patched), `UNBLOCKED`, `TRYAGAIN`/`CLUSTERDOWN` or a lost connection. Both keys must share
    /// a slot; `timeout` is finite.
    public func blockingMove(from source: String, to destination: String, timeout: Double,
                             atMost maxBytes: Int) throws(RedisClusterError) -> RedisConnection.BoundedMove {
        guard timeout > 0, timeout.isFinite else {
            throw .unroutable("a blocking command in a cluster needs a finite timeout > 0, not \(timeout)")
        }
        let slot = RedisClusterSlot.of(source)
        let deadline = Date(timeIntervalSinceNow: timeout)
        let started = Date()
        var attempt = 0
        var redirects = 0
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return .none }
            var node: RedisConfiguration.Endpoint?
            var sent = false
            do throws(RedisError) {
                let target = try route(slot)
                node = target
                let connection = self.connection(to: target)
                try activate(connection)
                defer { deactivate() }
                if !connection.isConnected { try connection.reconnect() }
                sent = true
                return try connection.blockingMove(from: source, to: destination,
                                                   timeout: max(0.01, (left * 1000).rounded(.up) / 1000), atMost: maxBytes)
            } catch .server(let message) {
                let code = message.prefix { $0 != " " }
                switch code {
                case "MOVED", "ASK":
                    // ASK (a slot half-migrated): the element is not here yet; waiting on the
                    // owner until the migration ends is what MOVED then gives.
                    redirects += 1
                    if redirects > options.maxRedirects { throw .tooManyRedirects(message) }
                    if code == "MOVED", let node, let redirect = RedisClusterRedirect(message, answeredBy: node) {
                        owners[redirect.slot] = redirect.endpoint
                    }
                    refreshDue = true
                    if code == "ASK" { try sleep(attempt: &attempt, since: started, orThrow: .redis(.server(message))) }
                case "UNBLOCKED":
                    refreshDue = true
                case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
                    refreshDue = true
                    try sleep(attempt: &attempt, since: started, orThrow: .redis(.server(message)))
                default:
                    throw .redis(.server(message))
                }
            } catch {
                try recover(from: error, node: node, sent: sent, attempt: &attempt, since: started)
            }
        }
    }
}
