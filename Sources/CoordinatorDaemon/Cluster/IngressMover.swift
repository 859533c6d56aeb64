import Coordination
import Crypto
import Foundation
import Logging
import RedisClient

/// Moves messages from an entry queue (`coord:requests`, `coord:approvals`,
/// `coord:steps:results`) to their partition's queue (PROTOCOL.md section 11), on a thread of
/// its own. A message is taken into this daemon's ingress in-flight list (in the entry queue's
/// slot), pushed to `coord:{p<k>}:<queue>` by a script that also marks the move in the
/// partition's slot (entry queue and SHA-256, valued with the in-flight list), then removed
/// from the in-flight list, and the mark deleted. A move repeated after a crash (by this
/// daemon or by one that took its lapsed in-flight list over) finds the mark and adds nothing.
final class IngressMover: @unchecked Sendable {
    private let context: DaemonContext
    private let queueName: String
    private let entry: String
    private let inflight: String
    private let index: String
    private let partitions: Partitions
    private let loop: LoopThread

    /// How long a mark outlives a crash between the move's last two steps.
    static let markTTLMs = 3_600_000

    init(context: DaemonContext, queueName: String) {
        self.context = context
        self.queueName = queueName
        self.entry = context.keys.queue(queueName)
        self.inflight = context.keys.ingressInflight(queue: entry, worker: context.workerID)
        self.index = context.keys.ingressIndex(queue: entry)
        self.partitions = Partitions(count: context.configuration.partitions)
        self.loop = LoopThread(name: "ingress-\(queueName)", context: context)
    }

    func run() async throws {
        try await loop.run { [self] in runLoop() }
    }

    private var maxBytes: Int { context.configuration.maxMessageBytes }

    /// What `list` holds, oldest first, and a message of it over `--max-message-bytes`, parked
    /// unread (`ClusterScripts.ingressHeld`): its length and first bytes.
    private func held(_ list: String, _ client: RedisClusterClient) throws -> (messages: [[UInt8]], parked: (length: Int, head: [UInt8])?) {
        let reply = try client.run(ClusterScripts.ingressHeld, keys: [list, context.keys.oversized(inflight: list)], args: [maxBytes])
        let parts = reply.array ?? []
        let messages = parts.first.map(Self.list) ?? []
        guard parts.count > 1, let pair = parts[1].array, pair.count == 2, let length = pair[0].integer, let head = pair[1].bytes
        else { return (messages, nil) }
        return (messages, (Int(length), head))
    }

    /// A message over `--max-message-bytes`, parked unread: its first `--max-message-bytes` + 1
    /// bytes go on to its partition in its place, where they are refused `too_large` as the
    /// whole message would be (answered when a `reply_to` stands in them), and the message is
    /// dropped. Made once by a mark, as any move (by its first bytes and length).
    private func passOn(_ parked: (length: Int, head: [UInt8]), from list: String, _ client: RedisClusterClient) throws {
        let keys = context.keys.partition(partition(of: parked.head))
        let digest = SHA256.hash(data: parked.head).map { String(format: "%02x", $0) }.joined() + "-\(parked.length)"
        let mark = keys.moved(queue: queueName, digest: digest)
        let push = ClusterScripts.ingressPush.command(keys: [keys.queue(queueName), mark], args: [parked.head, list, Self.markTTLMs])
        for reply in try client.pipelinePerMaster([push]) {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: Set([push].compactMap { RedisClusterSlot.of($0) }))
        let parkedList = context.keys.oversized(inflight: list)
        _ = try client.send(RedisCommand("DEL", parkedList), slot: RedisClusterSlot.of(parkedList))
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: [RedisClusterSlot.of(parkedList)])
        _ = try client.send(RedisCommand("DEL", mark), slot: RedisClusterSlot.of(mark))
        context.logger.warning("ingress \(queueName): a message over --max-message-bytes passed on as its first bytes, unread",
                               metadata: ["bytes": "\(parked.length)"])
    }

    /// How long an ingress in-flight list is held without renewal.
    private var holdMs: Int { Int(max(2, context.configuration.heartbeatTTL) * 1000) }

    private func runLoop() {
        let client = RedisClusterClient(configuration: context.redis)
        defer { client.close() }
        var lastHold = Date.distantPast
        var lastRecovery = Date.distantPast
        var backoff = Backoff(first: 0.05, max: 2)
        while !loop.isStopping {
            do {
                if Date().timeIntervalSince(lastHold) * 1000 >= Double(holdMs) / 3 {
                    let now = try redisTimeMs(client)
                    _ = try client.run(ClusterScripts.ingressHold, keys: [index], args: [inflight, now, now + holdMs, "0"])
                    lastHold = Date()
                }
                if Date().timeIntervalSince(lastRecovery) * 1000 >= Double(holdMs) / 2 {
                    try recover(client)
                    lastRecovery = Date()
                }
                let held = try self.held(inflight, client)
                if let parked = held.parked {
                    try passOn(parked, from: inflight, client)
                    continue
                }
                var batch = held.messages
                if batch.isEmpty {
                    // A message over --max-message-bytes is left unread at the head of the
                    // in-flight list; the next round parks it and passes on its first bytes.
                    guard case .element(let first) = try client.blockingMove(from: entry, to: inflight, timeout: 1, atMost: maxBytes)
                    else { continue }
                    batch = [first]
                    let size = context.configuration.batchSize
                    if size > 1 {
                        batch += Self.list(try client.run(ClusterScripts.takeMore, keys: [entry, inflight],
                                                          args: [size - 1, maxBytes, QueueWorker.batchBytes]))
                    }
                }
                try move(batch, from: inflight, client)
                backoff.reset()
            } catch {
                context.metrics.redisError()
                context.logger.warning("ingress \(queueName): retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
        // A clean stop leaves no entry behind when nothing is held (else it is taken over).
        _ = try? client.run(ClusterScripts.ingressForget, keys: [index, inflight, context.keys.oversized(inflight: inflight)], args: [])
    }

    /// Moves `batch` (oldest first), held in `list`, each message once: copies of one message
    /// in one batch go one per round (the mark tells a repeat from a copy only across rounds).
    private func move(_ batch: [[UInt8]], from list: String, _ client: RedisClusterClient) throws {
        var seen = Set<[UInt8]>()
        let distinct = batch.filter { seen.insert($0).inserted }
        var pushes: [RedisCommand] = []
        var marks: [RedisCommand] = []
        for message in distinct {
            let keys = context.keys.partition(partition(of: message))
            let mark = keys.moved(queue: queueName, digest: SHA256.hash(data: message).map { String(format: "%02x", $0) }.joined())
            pushes.append(ClusterScripts.ingressPush.command(keys: [keys.queue(queueName), mark],
                                                             args: [message, list, Self.markTTLMs]))
            marks.append(RedisCommand("DEL", mark))
        }
        for reply in try client.pipelinePerMaster(pushes) {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
        // With --min-replicas-acked, a push a failover could lose is not yet acknowledged, nor
        // the acknowledgement (which a failover could undo) followed by the marks' removal.
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: Set(pushes.compactMap { RedisClusterSlot.of($0) }))
        _ = try client.pipeline(distinct.map { RedisCommand("LREM", list, -1, $0) })
        try ReplicaCount.await(context.configuration.minReplicasAcked, client: client, slots: [RedisClusterSlot.of(list)])
        _ = try client.pipelinePerMaster(marks)
    }

    /// Takes over the in-flight lists of daemons whose hold lapsed, one at a time, and moves
    /// what they hold (the marks make a move they had made add nothing).
    private func recover(_ client: RedisClusterClient) throws {
        let fields = Self.list(try client.send("HGETALL", index))
        guard !fields.isEmpty else { return }
        let now = try redisTimeMs(client)
        var i = 0
        while i + 1 < fields.count {
            let list = String(decoding: fields[i], as: UTF8.self)
            let deadline = Int(String(decoding: fields[i + 1], as: UTF8.self)) ?? 0
            i += 2
            guard list != inflight, deadline < now else { continue }
            guard try client.run(ClusterScripts.ingressHold, keys: [index], args: [list, now, now + holdMs, "1"]).integer == 1 else { continue }
            context.logger.info("ingress \(queueName): taking over a lapsed in-flight list", metadata: ["list": "\(list)"])
            while !loop.isStopping {
                let held = try self.held(list, client)
                if let parked = held.parked {
                    try passOn(parked, from: list, client)
                    continue
                }
                if held.messages.isEmpty { break }
                try move(held.messages, from: list, client)
            }
            _ = try client.run(ClusterScripts.ingressForget, keys: [index, list, context.keys.oversized(inflight: list)], args: [])
        }
    }

    private func redisTimeMs(_ client: RedisClusterClient) throws -> Int {
        let parts = try client.send(RedisCommand("TIME"), slot: RedisClusterSlot.of(index)).array ?? []
        guard parts.count == 2, let s = parts[0].string.flatMap({ Int($0) }), let us = parts[1].string.flatMap({ Int($0) }) else {
            throw RedisError.protocolError("TIME: unexpected reply")
        }
        return s * 1000 + us / 1000
    }

    /// The partition a message belongs to: its customer's, or the one its plan or approval
    /// id names; a message that names neither goes where its bytes say (any partition
    /// refuses it as well as another).
    func partition(of message: [UInt8]) -> Int {
        Self.partition(of: message, queue: queueName, partitions: partitions)
    }

    static func partition(of message: [UInt8], queue: String, partitions: Partitions) -> Int {
        var body = message
        // A signed message (JWS compact): the payload is its middle part.
        if message.first == UInt8(ascii: "e"), let parts = Optional(message.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)),
           parts.count == 3, let payload = Base64URL.decode(parts[1]) {
            body = payload
        }
        // A message over the bound arrives as its first bytes: what stands whole in them routes it.
        var object: [String: TopLevelJSON.Value]?
        switch TopLevelJSON.members(body) {
        case .success(let members): object = members
        case .failure:
            let leading = TopLevelJSON.leadingMembers(body)
            if !leading.isEmpty { object = leading }
        }
        if let object {
            func id(_ field: String) -> Int? { object[field]?.string.flatMap { partitions.of(id: $0) } }
            switch queue {
            case "approvals":
                if let k = id("approval_id") { return k }
            case "steps:results":
                if let k = id("plan_id") { return k }
            default:
                switch object["kind"]?.string {
                case "execute_plan", "get_plan": if let k = id("plan_id") { return k }
                case "get_approval": if let k = id("approval_id") { return k }
                default:
                    if let customer = object["customer_id"]?.string, !customer.isEmpty { return partitions.of(customer: customer) }
                }
            }
        } else if queue == "approvals" {
            // Plain text: "approve <approval_id> <user_id>", "reject <approval_id> <user_id> <reason>".
            let words = body.prefix(512).split(separator: UInt8(ascii: " "), maxSplits: 2)
            if words.count >= 2, let k = partitions.of(id: String(decoding: words[1], as: UTF8.self)) { return k }
        }
        return partitions.of(bytes: message)
    }

    private static func list(_ reply: RedisReply) -> [[UInt8]] {
        (reply.array ?? []).compactMap(\.bytes)
    }
}
