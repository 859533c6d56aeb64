import Coordination
import Foundation
import Logging
import RedisClient
import Synchronization

/// Handles batches from `coord:requests`: one pipeline of reads, the engine, then one pipeline
/// of guarded commits (PROTOCOL.md section 2). A commit whose reads went stale (another daemon
/// changed the same customer meanwhile) is computed again from fresh reads.
final class RequestHandler: BatchHandler {
    let queueName = "requests"
    let context: DaemonContext
    let coordinator: Coordinator
    /// Intake waits while too many plans wait for an executor (`--plan-backlog`).
    let backlog: PlanBacklog

    /// Customers this daemon has seen holding state (or losing an optimistic commit). A
    /// `coordinate` of any other customer commits first without reading: see `readCoordinate`.
    private let customersWithState = Mutex(Set<String>())
    /// Past this many remembered customers the memory starts over (each is then read first
    /// again at most once).
    static let customersRemembered = 100_000

    init(context: DaemonContext) {
        self.context = context
        self.coordinator = Coordinator(configuration: context.configuration.engine)
        self.backlog = PlanBacklog(context: context)
    }

    func admits(_ connection: RedisConnection) throws(RedisError) -> Bool {
        try backlog.admits(connection)
    }

    func hasState(_ customer: String) -> Bool {
        customersWithState.withLock { $0.contains(customer) }
    }

    func rememberState(of customers: some Sequence<String>) {
        customersWithState.withLock { known in
            for customer in customers {
                if known.count >= Self.customersRemembered { known.removeAll(keepingCapacity: true) }
                known.insert(customer)
            }
        }
    }

    struct Item {
        var raw: [UInt8]
        var parsed: Envelope.Parsed
        var request: CoordinationRequest?
        /// The signer under `--trust` (section 10).
        var principal: Principal?
        /// The signature's `iat` and digest, when verified (PROTOCOL.md section 10).
        var issuedAt: Int?
        var signatureDigest: String?
        /// Rounds this item lost to concurrent commits of its customer.
        var rounds = 0
        /// Its optimistic commit (made without reading) found state: read first from now on.
        var readFirst = false
    }

    /// What earlier items of this batch committed for a customer, as later items must see it:
    /// their kept recommendations, the version tokens they set and the ids they made active.
    ///
    /// A later item guards a version field an earlier item sets by that item's token, which
    /// proves nothing changed the field between the two commits, but not before: an item that
    /// sets a field it never read (a customer-wide `add_capacity` sets `w`) would overwrite
    /// another daemon's change to it, and the later item, finding the token it expected, would
    /// commit without having seen that change (a customer-wide `scale_up` kept beside resourced
    /// `terminate`s). So when an item relies on a field's token, the field's writers before it
    /// owe guards (`lateGuards`): the first, the value the item read; each later one, the token
    /// before its own. Fields no later item reads cost no guard, so a burst of one customer's
    /// `scale_up`s, each setting the same action field, does not serialize on it.
    struct BatchState {
        var kept: [Recommendation] = []
        var versions: [String: [UInt8]] = [:]
        var ids: Set<String> = []
        /// The items (their index in the round) that set each version field, in order, with
        /// the token each set.
        var writers: [String: [(index: Int, token: [UInt8])]] = [:]
        /// Guards owed by an earlier item's commit: by item index, the fields and the values
        /// they must hold.
        var lateGuards: [Int: [(field: String, value: [UInt8]?)]] = [:]
        /// (item, field) pairs already owing the token before their own.
        var chained = Set<String>()

        /// An item relies on `field` holding its last writer's token, having read it at `read`.
        mutating func relyOn(_ field: String, read: [UInt8]?) {
            guard let list = writers[field], let first = list.first else { return }
            lateGuards[first.index, default: []].append((field, read))
            for k in list.indices.dropFirst() where chained.insert("\(list[k].index)|\(field)").inserted {
                lateGuards[list[k].index, default: []].append((field, list[k - 1].token))
            }
        }
    }

    /// What one `coordinate` read: the records it can conflict with and what guards its commit.
    struct Gathered {
        var active: [Recommendation]
        var versions: [(key: String, value: [UInt8]?)]
        var named: [(id: String, active: Bool)]
    }

    /// Rounds an item may lose (its reads went stale) before it takes its customer's lock.
    static let roundsBeforeLock = 2
    /// How long a customer lock lives at most (ms): a holder that dies frees it by then.
    static let lockMs = 2000
    /// A safety net past the lock: an item still losing rounds this long after its batch was
    /// taken is answered `internal` rather than retried for ever. Counted in time, not rounds:
    /// a holder that froze (SIGSTOP, a paused VM) keeps the lock for its whole life, and
    /// others must outwait that, however fast their rounds (200 rounds took 0.7 s).
    static let giveUpNanoseconds = UInt64(5 * lockMs) * 1_000_000

    func handle(_ messages: [[UInt8]], inflight: String, connection: RedisConnection) throws(RedisError) {
        let popped = DaemonMetrics.now()
        var pending = messages.map(admit)
        // Bursts: an item whose reads went stale is computed again with fresh reads (the
        // indexes make that cheap, and version keys per resource/action mean only requests
        // that can really conflict invalidate each other). One that loses
        // `roundsBeforeLock` rounds takes its customer's lock (SET NX PX, in Redis, so it
        // holds across the loops of this process and across daemons): while it is held, every
        // other commit of that customer is stale, so the holder wins its next round. Rounds
        // are thus bounded by the lock's life, and a message that keeps losing is not starved.
        var round = 0
        while !pending.isEmpty {
            round += 1
            // Backing off, up to 20 ms: a lock held by a frozen daemon is outwaited, not hammered.
            if round > 3 { Thread.sleep(forTimeInterval: Double.random(in: 0.001...min(0.02, 0.001 * Double(round)))) }
            pending = try attempt(pending, inflight: inflight, connection: connection, popped: popped)
        }
    }


    /// A message as taken: its signature checked (section 10), its envelope parsed, a
    /// `coordinate`'s request decoded and bounded (section 2.5), and the signer's rights.
    private func admit(_ raw: [UInt8]) -> Item {
        let config = context.configuration
        let trust = context.trust
        // Section 10: the signature is checked before anything is read for the message.
        let admitted = trust.admit(raw)
        var item = Item(raw: raw, parsed: Envelope.parse(admitted.message, maxBytes: config.maxMessageBytes, rules: context.replyRules),
                        principal: admitted.principal, issuedAt: admitted.issuedAt, signatureDigest: admitted.signatureDigest)
        if let refusal = admitted.refusal {
            // PROTOCOL.md section 10: nothing in a message nobody verified is vouched for, its
            // reply_to included: it gets no reply, only a dead letter.
            item.parsed.failure = refusal
            item.parsed.replyTo = nil
        } else if item.parsed.failure == nil,
                  let refusal = trust.refusal(replyTo: item.parsed.replyTo, by: item.principal, replyPrefix: config.replyPrefix) {
            // Outside the signer's reply namespace: answering there is the very write the
            // rule forbids, so the refusal goes to coord:dead alone.
            item.parsed.failure = refusal
            item.parsed.replyTo = nil
        }
        if item.parsed.failure == nil, item.parsed.kind == .coordinate {
            do throws(ValidationError) {
                var request = try RequestDecoding.coordinationRequest(from: admitted.message)
                if request.recommendations.count > config.maxRecommendations {
                    item.parsed.failure = Refusal(.tooLarge, "recommendations: \(request.recommendations.count) items, over --max-recommendations (\(config.maxRecommendations))")
                } else {
                    // Section 2.5: every affected resource is a key and an index entry.
                    try WireLimits.checkResourceCounts(request, perRecommendation: config.maxResources)
                    trust.riskFloor.apply(to: &request)
                    item.parsed.failure = trust.refusal(coordinate: request, by: item.principal)
                    item.request = request
                }
            } catch {
                item.parsed.failure = Refusal(error.tooLarge ? .tooLarge : .invalidRequest, error.description)
            }
        } else if item.parsed.failure == nil, let kind = item.parsed.kind {
            item.parsed.failure = trust.refusal(kind, customer: item.parsed.customerID, by: item.principal)
        }
        return item
    }
}
