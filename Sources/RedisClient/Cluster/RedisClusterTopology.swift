/// Which master serves which slots, as one node of the cluster sees it.
public struct RedisClusterTopology: Sendable, Equatable {
    /// A master, its replicas and the slots it serves.
    public struct Shard: Sendable, Equatable {
        /// Slot ranges, inclusive.
        public var slots: [ClosedRange<Int>]
        /// The node that serves the slots' reads and writes.
        public var master: RedisConfiguration.Endpoint
        /// Its replicas (not used for routing; listed for the daemon's `WAIT` accounting and logs).
        public var replicas: [RedisConfiguration.Endpoint]

        /// A shard.
        public init(slots: [ClosedRange<Int>], master: RedisConfiguration.Endpoint, replicas: [RedisConfiguration.Endpoint] = []) {
            self.slots = slots
            self.master = master
            self.replicas = replicas
        }
    }

    /// The shards that serve at least one slot.
    public var shards: [Shard]

    /// The topology of these shards.
    public init(shards: [Shard]) {
        self.shards = shards
    }

    /// The masters, in the order of their first slot.
    public var masters: [RedisConfiguration.Endpoint] {
        shards.sorted { ($0.slots.first?.lowerBound ?? 0) < ($1.slots.first?.lowerBound ?? 0) }.map(\.master)
    }

    /// How many of the 16384 slots some master serves.
    public var coveredSlots: Int {
        shards.reduce(0) { sum, shard in sum + shard.slots.reduce(0) { $0 + $1.count } }
    }

    /// Parses a `CLUSTER SHARDS` reply (Redis ≥ 7, RESP2: every map a flat array of names and
    /// values). A node whose endpoint is unknown to the answering node (`?` or empty) is taken
    /// to be on the answering node's host. A shard's master is its node with role `master`, an
    /// online one first; shards without slots (an empty master, a failed old master) are left out.
    public static func parse(shards reply: RedisReply, answeredBy node: RedisConfiguration.Endpoint) throws(RedisError) -> RedisClusterTopology {
        guard let entries = reply.array else { throw .protocolError("CLUSTER SHARDS: expected an array, got \(reply)") }
        var shards: [Shard] = []
        for entry in entries {
            let shard = try fields(entry, what: "CLUSTER SHARDS shard")
            guard let slotNumbers = shard["slots"]?.array, let nodes = shard["nodes"]?.array else {
                throw .protocolError("CLUSTER SHARDS: a shard without slots or nodes: \(entry)")
            }
            let bounds = slotNumbers.compactMap { $0.integer.map(Int.init) ?? $0.string.flatMap { Int($0) } }
            guard bounds.count == slotNumbers.count, bounds.count % 2 == 0 else {
                throw .protocolError("CLUSTER SHARDS: slots are not pairs of numbers: \(slotNumbers)")
            }
            if bounds.isEmpty { continue }
            let ranges = stride(from: 0, to: bounds.count, by: 2).map { bounds[$0]...bounds[$0 + 1] }
            var masters: [(RedisConfiguration.Endpoint, Bool)] = []
            var replicas: [RedisConfiguration.Endpoint] = []
            for description in nodes {
                let info = try fields(description, what: "CLUSTER SHARDS node")
                let port = info["port"]?.integer.map(Int.init) ?? info["port"]?.string.flatMap { Int($0) }
                guard let port else { throw .protocolError("CLUSTER SHARDS: a node without a port: \(description)") }
                let endpoint = Self.endpoint(host: info["endpoint"]?.string, orIP: info["ip"]?.string, port: port, answeredBy: node)
                let online = (info["health"]?.string ?? "online") == "online"
                if info["role"]?.string == "master" {
                    masters.append((endpoint, online))
                } else if online {
                    replicas.append(endpoint)
                }
            }
            guard let master = (masters.first { $0.1 } ?? masters.first)?.0 else { continue }
            shards.append(Shard(slots: ranges, master: master, replicas: replicas))
        }
        return RedisClusterTopology(shards: shards)

        func fields(_ reply: RedisReply, what: String) throws(RedisError) -> [String: RedisReply] {
            guard let flat = reply.array, flat.count % 2 == 0 else { throw .protocolError("\(what): expected a map, got \(reply)") }
            var map: [String: RedisReply] = [:]
            for i in stride(from: 0, to: flat.count, by: 2) {
                guard let name = flat[i].string else { throw .protocolError("\(what): a field name that is not a string: \(flat[i])") }
                map[name] = flat[i + 1]
            }
            return map
        }
    }

    /// Parses a `CLUSTER SLOTS` reply (Redis 3 to 7): `[[start, end, [host, port, id…], replicas…]…]`.
    /// An empty host is the answering node's.
    public static func parse(slots reply: RedisReply, answeredBy node: RedisConfiguration.Endpoint) throws(RedisError) -> RedisClusterTopology {
        guard let entries = reply.array else { throw .protocolError("CLUSTER SLOTS: expected an array, got \(reply)") }
        var shards: [Shard] = []
        for entry in entries {
            guard let items = entry.array, items.count >= 3, let start = items[0].integer, let end = items[1].integer else {
                throw .protocolError("CLUSTER SLOTS: unexpected range \(entry)")
            }
            var endpoints: [RedisConfiguration.Endpoint] = []
            for description in items[2...] {
                guard let fields = description.array, fields.count >= 2, let port = fields[1].integer else {
                    throw .protocolError("CLUSTER SLOTS: unexpected node \(description)")
                }
                endpoints.append(endpoint(host: fields[0].string, orIP: nil, port: Int(port), answeredBy: node))
            }
            let range = Int(start)...Int(end)
            // One shard per master: CLUSTER SLOTS lists a master once per range it serves.
            if let index = shards.firstIndex(where: { $0.master == endpoints[0] }) {
                shards[index].slots.append(range)
            } else {
                shards.append(Shard(slots: [range], master: endpoints[0], replicas: Array(endpoints.dropFirst())))
            }
        }
        return RedisClusterTopology(shards: shards)
    }

    private static func endpoint(host: String?, orIP ip: String?, port: Int, answeredBy node: RedisConfiguration.Endpoint) -> RedisConfiguration.Endpoint {
        for candidate in [host, ip] {
            if let candidate, !candidate.isEmpty, candidate != "?" { return .tcp(host: candidate, port: port) }
        }
        if case .tcp(let host, _) = node { return .tcp(host: host, port: port) }
        return .tcp(host: "127.0.0.1", port: port)
    }
}

/// A `MOVED` or `ASK` error reply: `MOVED 3999 127.0.0.1:6381`.
struct RedisClusterRedirect: Sendable, Equatable {
    enum Kind: Sendable { case moved, ask }
    let kind: Kind
    let slot: Int
    let endpoint: RedisConfiguration.Endpoint

    /// Parses the message; an empty host (`MOVED 3999 :6380`, a node that does not know its
    /// own address) is the host of the node that answered.
    init?(_ message: String, answeredBy node: RedisConfiguration.Endpoint) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<RedisClusterSlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        self.slot = slot
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty, case .tcp(let nodeHost, _) = node { host = nodeHost }
        endpoint = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }
}
