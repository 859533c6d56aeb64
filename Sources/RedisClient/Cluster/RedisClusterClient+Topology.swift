import Foundation

// Reading the cluster's topology and routing a slot to its master (RedisClusterClient.swift
// has the client).

extension RedisClusterClient {
    /// Reads the topology now: `CLUSTER SHARDS`, or `CLUSTER SLOTS` where that is unknown, from
    /// the first node that answers, the known masters first, then the seeds, then the replicas
    /// (the node that last failed is asked last).
    public func refreshTopology() throws(RedisClusterError) {
        do {
            try reload()
        } catch {
            if case .closed = error { _ = consumeInterrupt() }
            throw .redis(error)
        }
    }

    func reload() throws(RedisError) {
        var candidates: [RedisConfiguration.Endpoint] = []
        for endpoint in current.masters + (configuration.clusterSeeds ?? [configuration.endpoint]) + current.shards.flatMap(\.replicas)
        where !candidates.contains(endpoint) && endpoint != lastFailed {
            candidates.append(endpoint)
        }
        if let lastFailed { candidates.append(lastFailed) }
        var lastError = RedisError.connection("no seed node configured")
        for endpoint in candidates {
            do {
                let topology = try readTopology(from: endpoint)
                guard topology.coveredSlots > 0 else {
                    lastError = .server("\(endpoint) serves no slots: not part of a configured cluster yet")
                    continue
                }
                install(topology)
                return
            } catch .closed where interruptPending() {
                throw .closed
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// The master of `slot`, refreshing the topology first when a refresh is due or the slot's
    /// owner is unknown.
    func route(_ slot: Int) throws(RedisError) -> RedisConfiguration.Endpoint {
        let stale = refreshDue && (lastRefresh.map { -$0.timeIntervalSinceNow >= options.minimumRefreshInterval } ?? true)
        if stale || owners[slot] == nil {
            do {
                try reload()
            } catch .closed {
                throw .closed
            } catch {
                record { $0.topologyRefreshFailures += 1 }
                // Keep routing on what is known; with nothing known, the call fails as at the
                // connection level (and is retried within its budget).
                if owners[slot] == nil { throw .connection("reading the cluster topology: \(error)") }
            }
        }
        guard let owner = owners[slot] else {
            throw .connection("no master serves slot \(slot) (the cluster does not cover it)")
        }
        return owner
    }

    func readTopology(from endpoint: RedisConfiguration.Endpoint) throws(RedisError) -> RedisClusterTopology {
        let connection = self.connection(to: endpoint)
        try activate(connection)
        defer { deactivate() }
        let replies = try connection.pipeline([RedisCommand("CLUSTER", "SHARDS")])
        if case .error = replies[0] {
            // Redis < 7 (or a proxy without SHARDS): the older form.
            let slots = try connection.send("CLUSTER", "SLOTS")
            return try RedisClusterTopology.parse(slots: slots, answeredBy: endpoint)
        }
        return try RedisClusterTopology.parse(shards: replies[0], answeredBy: endpoint)
    }

    func install(_ topology: RedisClusterTopology) {
        current = topology
        owners = [RedisConfiguration.Endpoint?](repeating: nil, count: RedisClusterSlot.count)
        for shard in topology.shards {
            for range in shard.slots where range.lowerBound >= 0 && range.upperBound < RedisClusterSlot.count {
                for slot in range { owners[slot] = shard.master }
            }
        }
        // Close the connections of nodes that left (a failed-over master): they would only hold
        // a socket, or a dead one's reconnect state. A seed reopens when it is asked again.
        let known = Set(topology.shards.flatMap { [$0.master] + $0.replicas })
        for (endpoint, connection) in connections where !known.contains(endpoint) {
            connection.close()
            connections[endpoint] = nil
        }
        refreshDue = false
        lastRefresh = Date()
        record { $0.topologyRefreshes += 1 }
    }

    func connection(to endpoint: RedisConfiguration.Endpoint) -> RedisConnection {
        if let connection = connections[endpoint] { return connection }
        var nodeConfiguration = configuration
        nodeConfiguration.endpoint = endpoint
        nodeConfiguration.clusterSeeds = nil
        nodeConfiguration.database = 0
        let connection = RedisConnection(lazy: nodeConfiguration)
        connections[endpoint] = connection
        madeConnections += 1
        serials[endpoint] = madeConnections
        return connection
    }
}
