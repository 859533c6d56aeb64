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
    private let context: DaemonContext
    private let coordinator: Coordinator

    /// Customers this daemon has seen holding state (or losing an optimistic commit). A
    /// `coordinate` of any other customer commits first without reading: see `attempt`.
    private let customersWithState = Mutex(Set<String>())
    /// Past this many remembered customers the memory starts over (each is then read first
    /// again at most once).
    static let customersRemembered = 100_000

    init(context: DaemonContext) {
        self.context = context
        self.coordinator = Coordinator(configuration: context.configuration.engine)
    }

    private func hasState(_ customer: String) -> Bool {
        customersWithState.withLock { $0.contains(customer) }
    }

    private func rememberState(of customers: some Sequence<String>) {
        customersWithState.withLock { known in
            for customer in customers {
                if known.count >= Self.customersRemembered { known.removeAll(keepingCapacity: true) }
                known.insert(customer)
            }
        }
    }

    private struct Item {
        var raw: [UInt8]
        var parsed: Envelope.Parsed
        var request: CoordinationRequest?
        /// The signer under `--trust` (section 10).
        var principal: Principal?
        /// The signature's `iat` and digest, when verified (section 10, v3).
        var issuedAt: Int?
        var signatureDigest: String?
        /// Rounds this item lost to concurrent commits of its customer.
        var rounds = 0
        /// Its optimistic commit (made without reading) found state: read first from now on.
        var readFirst = false
    }

    /// What earlier items of this batch committed for a customer, as later items must see it:
    /// their kept recommendations, the version tokens they set and the ids they made active.
    private struct BatchState {
        var kept: [Recommendation] = []
        var versions: [String: [UInt8]] = [:]
        var ids: Set<String> = []
    }

    /// What one `coordinate` read: the records it can conflict with and what guards its commit.
    private struct Gathered {
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
        let config = context.configuration
        let trust = context.trust
        var pending = messages.map { raw -> Item in
            // Section 10: the signature is checked before anything is read for the message.
            let admitted = trust.admit(raw)
            var item = Item(raw: raw, parsed: Envelope.parse(admitted.message, maxBytes: config.maxMessageBytes, rules: context.replyRules),
                            principal: admitted.principal, issuedAt: admitted.issuedAt, signatureDigest: admitted.signatureDigest)
            if let refusal = admitted.refusal {
                // v3: nothing in a message nobody verified is vouched for, its reply_to
                // included: it gets no reply, only a dead letter.
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

    /// One read-compute-commit round; returns the items whose commit found its reads stale.
    private func attempt(_ items: [Item], inflight: String, connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        let keys = context.keys
        let contradicting = context.configuration.engine.actionConflicts

        // Reads, all in one round trip, with Redis's clock.
        var reads: [RedisCommand] = [RedisClock.command]
        var dedupeRead: [Int: Int] = [:]
        var objectRead: [Int: Int] = [:]
        // `at` nil: committed optimistically, as if the reads had found nothing.
        var gatherRead: [Int: (at: Int?, versionKeys: [String], named: [String])] = [:]
        var lockRead: [String: (at: Int, token: [UInt8])] = [:]
        var seenRead: [Int: (at: Int, key: String)] = [:]
        for (index, item) in items.enumerated() where item.parsed.failure == nil {
            if let key = seenKey(item) {
                seenRead[index] = (reads.count, key)
                reads.append(RedisCommand("GET", key))
            }
            switch item.parsed.kind {
            case .coordinate:
                let request = item.request!
                let customer = request.customerID
                // A customer with no state (most requests are a new customer's) is committed
                // without reading: the commit's guards (every version key and named id
                // absent, the request_id unused) are exactly what an empty read would have
                // set, so a customer that does hold state only makes the commit stale, and
                // the next round reads. Signed messages read first (their replay check needs
                // the request_id's stored reply).
                let optimistic = !item.readFirst && item.rounds == 0 && item.signatureDigest == nil && !hasState(customer)
                if item.parsed.requestIDGiven, !optimistic {
                    dedupeRead[index] = reads.count
                    reads.append(RedisCommand("GET", keys.dedupe(customer: customer, requestID: item.parsed.requestID)))
                }
                if item.rounds >= Self.roundsBeforeLock, lockRead[customer] == nil {
                    var tokens = UUIDGenerator()
                    let token = Array(tokens.next().utf8)
                    lockRead[customer] = (reads.count, token)
                    reads.append(RedisCommand("SET", keys.customerLock(customer), token, "NX", "PX", Self.lockMs))
                }
                var sets: [String] = []
                var versionKeys: [String] = []
                var seenSets = Set<String>()
                func add(_ set: String, _ version: String) {
                    if seenSets.insert(set).inserted { sets.append(set); versionKeys.append(version) }
                }
                var named: [String] = []
                var seenNamed = Set<String>()
                // A recommendation with resources conflicts with a customer-wide active one only
                // through an action that contradicts its own: when none of the request's does, the
                // customer-wide ones are not read (24,000 of them pending with made-up actions cost
                // such a request nothing).
                var canMeetWide = false
                for rec in request.recommendations {
                    let contra = contradicting.contradicting[rec.action] ?? []
                    if rec.affectedResources.isEmpty {
                        for action in contra {
                            add(keys.actionIndex(customer: customer, action: action), Keys.actionVersion(action))
                        }
                    } else {
                        for resource in rec.affectedResources {
                            add(keys.resourceIndex(customer: customer, resource: resource), Keys.resourceVersion(resource))
                        }
                        if !contra.isEmpty { canMeetWide = true }
                    }
                    if seenNamed.insert(rec.id).inserted { named.append(rec.id) }
                    for dependency in rec.dependencies where seenNamed.insert(dependency).inserted { named.append(dependency) }
                }
                if canMeetWide { add(keys.wideIndex(customer: customer), Keys.wideVersion) }
                if optimistic {
                    gatherRead[index] = (nil, versionKeys, named)
                    break
                }
                gatherRead[index] = (reads.count, versionKeys, named)
                reads.append(Scripts.gatherActive.command(
                    keys: [keys.active(customer: customer)] + sets + [keys.versions(customer: customer)],
                    args: [String(sets.count), String(versionKeys.count)] + versionKeys + named))
            case .getPlan, .executePlan:
                objectRead[index] = reads.count
                reads.append(RedisCommand("GET", keys.plan(item.parsed.planID)))
                reads.append(RedisCommand("EXISTS", keys.planQueued(item.parsed.planID)))
            case .getApproval:
                objectRead[index] = reads.count
                reads.append(RedisCommand("GET", keys.approval(item.parsed.approvalID)))
            case .listApprovals:
                objectRead[index] = reads.count
                reads.append(Scripts.pendingApprovals.command(
                    keys: [keys.pendingApprovals(customer: item.parsed.customerID)],
                    args: [keys.approvalKeyHead, keys.approvalKeyTail]))
            case nil:
                break
            }
        }
        let replies = try connection.pipeline(reads)
        let now = RedisClock.date(from: replies[0])

        // execute_plan: the plan's recommendation, to know whether it can start right now.
        var planRecords: [Int: RedisReply] = [:]
        var recordReads: [(Int, RedisCommand)] = []
        for (index, item) in items.enumerated() where item.parsed.failure == nil && item.parsed.kind == .executePlan {
            guard let bytes = replies[objectRead[index]!].bytes,
                  let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(bytes)) else { continue }
            recordReads.append((index, RedisCommand("HGET", keys.active(customer: plan.customerID), plan.recommendationID)))
        }
        if !recordReads.isEmpty {
            for ((index, _), reply) in zip(recordReads, try connection.pipeline(recordReads.map(\.1))) { planRecords[index] = reply }
        }

        // Compute every item's commit, in order.
        var commits: [Commit] = []
        commits.reserveCapacity(items.count)
        var batch: [String: BatchState] = [:]
        var firstReplyOfRequest: [String: [UInt8]] = [:]
        var firstOfSignature: [String: [UInt8]] = [:]
        var refused: [Int: Refusal] = [:]  // for the metrics: how each refused item ended
        for (index, item) in items.enumerated() {
            var commit = Commit(acknowledging: item.raw, in: inflight)
            let parsed = item.parsed
            let kindName = parsed.kind?.rawValue ?? parsed.kindName
            if let failure = parsed.failure {
                fail(&commit, item, failure, now: now)
                commits.append(commit)
                continue
            }
            // Section 10, v3: a signature out of its time window is refused; one already seen
            // within it is a replay, answered as a duplicate and changing nothing. The first
            // copy's commit writes the seen key, guarded absent, so of two copies racing (in
            // this batch or in two daemons) exactly one has effects.
            if let refusal = context.trust.refusal(signedAt: item.issuedAt, by: item.principal, now: now,
                                                   maxAge: context.configuration.signatureMaxAge) {
                fail(&commit, item, refusal, now: now)
                refused[index] = refusal
                commits.append(commit)
                continue
            }
            let seenKey = seenRead[index]?.key
            if let seen = seenRead[index] {
                var marker = replies[seen.at].bytes
                if marker == nil, let first = firstOfSignature[seen.key] {
                    commit.require(seen.key, .equals(first))
                    marker = first
                }
                if let marker {
                    if marker == Self.seenMark, parsed.kind == .coordinate, parsed.requestIDGiven {
                        // The first copy's reply is stored under its request_id: the dedupe
                        // path below answers with it. Should that have expired (a
                        // --dedupe-ttl shorter than the window), the replay is still refused.
                        let key = keys.dedupe(customer: item.request!.customerID, requestID: parsed.requestID)
                        if replies[dedupeRead[index]!].bytes == nil && firstReplyOfRequest[key] == nil {
                            let refusal = Trust.replayRefusal()
                            fail(&commit, item, refusal, now: now)
                            refused[index] = refusal
                            commits.append(commit)
                            continue
                        }
                    } else {
                        replayed(&commit, item, marker, now: now, refused: &refused[index])
                        commits.append(commit)
                        continue
                    }
                }
            }
            var dedupeKey: String?
            if parsed.kind == .coordinate, parsed.requestIDGiven {
                let key = keys.dedupe(customer: item.request!.customerID, requestID: parsed.requestID)
                dedupeKey = key
                if let at = dedupeRead[index], let error = replies[at].errorMessage {
                    // Not what the daemon writes there (a hostile writer): this request's failure.
                    fail(&commit, item, Refusal(.internal, "reading request_id \(parsed.requestID)'s stored reply failed: \(error)"), now: now)
                    commits.append(commit)
                    continue
                }
                if let at = dedupeRead[index], let stored = replies[at].bytes {
                    replay(&commit, item, stored, now: now)
                    commits.append(commit)
                    continue
                }
                if let first = firstReplyOfRequest[key] {
                    // The same request twice in one batch: answered like the first, once the
                    // first's commit has stored that answer.
                    commit.require(key, .equals(first))
                    replay(&commit, item, first, now: now)
                    commits.append(commit)
                    continue
                }
            }
            // Section 10: an agent may start and read only its own customers' plans and approvals.
            if let refusal = context.trust.refusal(parsed.kind!, stored: objectRead[index].flatMap { replies[$0].bytes }, by: item.principal) {
                fail(&commit, item, refusal, now: now)
                commits.append(commit)
                continue
            }
            let outcome: Result<[UInt8], Refusal>
            var coordination: CoordinationChange?
            switch parsed.kind! {
            case .coordinate:
                let customer = item.request!.customerID
                let read = gatherRead[index]!
                if let at = read.at, let error = replies[at].errorMessage {
                    // The customer's state is not what the daemon wrote (a hostile writer):
                    // this request's failure alone.
                    fail(&commit, item, Refusal(.internal, "reading customer \(customer)'s state failed: \(error)"), now: now)
                    commits.append(commit)
                    continue
                }
                if item.rounds > Self.roundsBeforeLock, DaemonMetrics.now() &- popped >= Self.giveUpNanoseconds {
                    fail(&commit, item, Refusal(.internal, "lost \(item.rounds) rounds to concurrent changes of customer \(customer)"), now: now)
                    commits.append(commit)
                    continue
                }
                let gathered = read.at.map { Self.gathered(replies[$0], versionKeys: read.versionKeys, named: read.named) }
                    ?? Gathered(active: [], versions: read.versionKeys.map { ($0, nil) }, named: read.named.map { ($0, false) })
                var lock: [UInt8]?
                if let (at, token) = lockRead[customer], replies[at].string == "OK" { lock = token; lockRead[customer] = (at, []) }
                let computed = coordinate(item, gathered: gathered, batch: &batch[customer, default: BatchState()], lock: lock, now: now)
                coordination = computed.change
                outcome = .success(computed.result)
            case .getPlan:
                outcome = replies[objectRead[index]!].bytes.map { .success($0) }
                    ?? .failure(Refusal(.notFound, "plan_id: no plan \(WireLimits.quoted(parsed.planID))"))
            case .executePlan:
                let at = objectRead[index]!
                outcome = executePlan(parsed, stored: replies[at].bytes, queued: replies[at + 1].integer == 1,
                                      record: planRecords[index]?.bytes, into: &commit, now: now)
            case .getApproval:
                outcome = replies[objectRead[index]!].bytes.map { .success($0) }
                    ?? .failure(Refusal(.notFound, "approval_id: no approval \(WireLimits.quoted(parsed.approvalID))"))
            case .listApprovals:
                let approvals = replies[objectRead[index]!].array ?? []
                var w = JSONWriter(capacity: 64 + approvals.count * 512)
                w.beginObject()
                w.key("approvals")
                w.beginArray()
                for approval in approvals { if let bytes = approval.bytes { w.raw(bytes) } }
                w.endArray()
                w.key("count"); w.int(approvals.count)
                w.endObject()
                outcome = .success(w.bytes)
            }
            switch outcome {
            case .success(let result):
                let reply = WireMessages.okReply(requestID: parsed.requestID, kind: kindName, result: result)
                if let change = coordination, seenKey == nil {
                    // The common case, in the coordinate script's one call.
                    commit = context.store.commit(change, acknowledging: item.raw, in: inflight, reply: reply,
                                                  replyTo: parsed.replyTo, dedupe: dedupeKey, now: now)
                    if let dedupeKey { firstReplyOfRequest[dedupeKey] = Array((parsed.replyTo ?? "").utf8) + [0x0A] + reply }
                    commits.append(commit)
                    continue
                }
                if let change = coordination { context.store.write(change, into: &commit, now: now) }
                if let dedupeKey {
                    commit.require(dedupeKey, .absent)
                    firstReplyOfRequest[dedupeKey] = Array((parsed.replyTo ?? "").utf8) + [0x0A] + reply
                }
                var seenReply: String?
                if let seenKey {
                    // A coordinate's replay gets this reply again: stored under its request_id
                    // when it has one, else under the seen key itself (by the reply's own
                    // write, the payload passed once). Other kinds: already_processed.
                    if parsed.kind == .coordinate && dedupeKey == nil {
                        commit.require(seenKey, .absent)
                        seenReply = seenKey
                        firstOfSignature[seenKey] = Array((parsed.replyTo ?? "").utf8) + [0x0A] + reply
                    } else {
                        remember(seenKey, Self.seenMark, in: &commit)
                        firstOfSignature[seenKey] = Self.seenMark
                    }
                }
                if let seenReply {
                    context.reply(reply, to: parsed.replyTo, dedupe: seenReply, dedupeTTL: Trust.seenTTL(maxAge: context.configuration.signatureMaxAge), in: &commit)
                } else {
                    context.reply(reply, to: parsed.replyTo, dedupe: dedupeKey, in: &commit)
                }
            case .failure(let failure):
                fail(&commit, item, failure, now: now)
                refused[index] = failure
                if let seenKey {
                    remember(seenKey, Self.seenMark, in: &commit)
                    firstOfSignature[seenKey] = Self.seenMark
                }
            }
            commits.append(commit)
        }
        // A lock taken this round but not used (its item was answered otherwise) is freed.
        var unlocks: [RedisCommand] = []
        for (customer, lock) in lockRead where !lock.token.isEmpty && replies[lock.at].string == "OK" {
            unlocks.append(RedisCommand("DEL", keys.customerLock(customer)))
        }

        let results = try Commit.apply(commits, on: connection, metrics: context.metrics)
        if !unlocks.isEmpty { _ = try connection.pipeline(unlocks) }
        var stale: [Item] = []
        var withState: [String] = []
        var failed: [(Item, String)] = []
        var undeliverable: [(raw: [UInt8], replyTo: String, error: String)] = []
        for (index, result) in results.enumerated() {
            switch result {
            case .applied, .appliedReplyUndeliverable:
                context.counters.add(processed: 1)
                context.metrics.request(kind: items[index].parsed.kindName, refused[index] ?? items[index].parsed.failure, since: popped)
                logDone(items[index])
                if case .appliedReplyUndeliverable(let error) = result {
                    undeliverable.append((items[index].raw, items[index].parsed.replyTo ?? "", error))
                }
                if gatherRead[index] != nil, let customer = items[index].request?.customerID { withState.append(customer) }
            case .messageGone:
                context.logger.warning("message was taken over by another worker before its commit; left to it",
                                       metadata: ["request_id": "\(items[index].parsed.requestID)"])
            case .stale:
                var item = items[index]
                if let read = gatherRead[index], read.at == nil {
                    // An optimistic commit that found state: not a lost round, just a read owed.
                    item.readFirst = true
                    withState.append(item.request!.customerID)
                } else {
                    item.rounds += 1
                }
                stale.append(item)
            case .failed(let message):
                failed.append((items[index], message))
            }
        }
        if !withState.isEmpty { rememberState(of: withState) }
        try context.deadLetterUndeliverable(undeliverable, queue: context.keys.requests, now: now, connection: connection)
        if !failed.isEmpty { try settleFailed(failed, inflight: inflight, now: now, connection: connection) }
        return stale
    }

    /// A message whose commit failed in Redis (a key of the wrong type, say) is that
    /// message's failure alone: it is answered and dead-lettered as `internal`, and when even
    /// that cannot be written it is acknowledged and logged, so it never comes back.
    private func settleFailed(_ failed: [(Item, String)], inflight: String, now: Date,
                              connection: RedisConnection) throws(RedisError) {
        var commits: [Commit] = []
        for (item, message) in failed {
            context.logger.error("commit failed in Redis; the message is dead-lettered",
                                 metadata: ["request_id": "\(item.parsed.requestID)", "error": "\(message)"])
            var commit = Commit(acknowledging: item.raw, in: inflight)
            fail(&commit, item, Refusal(.internal, "Redis refused the change: \(message)"), now: now)
            commits.append(commit)
        }
        let results = try Commit.apply(commits, on: connection, metrics: context.metrics)
        let acks = zip(failed, results).compactMap { pair -> Commit? in
            if case .failed = pair.1 { return Commit(acknowledging: pair.0.0.raw, in: inflight) }
            return nil
        }
        if !acks.isEmpty { _ = try Commit.apply(acks, on: connection) }
    }

    /// Where a verified message's signature is remembered once processed, under the hash tag
    /// of what it acts on or reads (section 10, v3); nil for unsigned messages.
    private func seenKey(_ item: Item) -> String? {
        guard let digest = item.signatureDigest, let kind = item.parsed.kind else { return nil }
        let keys = context.keys
        switch kind {
        case .coordinate:
            guard let request = item.request else { return nil }
            return keys.seenSignature(customer: request.customerID, digest: digest)
        case .executePlan, .getPlan:
            return keys.seenSignature(plan: item.parsed.planID, digest: digest)
        case .getApproval:
            return keys.seenSignature(approval: item.parsed.approvalID, digest: digest)
        case .listApprovals:
            return keys.seenSignature(customer: item.parsed.customerID, digest: digest)
        }
    }

    /// What a seen key holds when the replay is not answered from it.
    private static let seenMark: [UInt8] = [UInt8(ascii: "1")]

    /// Marks a signature as processed in the commit of the message's effects, guarded so that
    /// only one copy's commit can write it.
    private func remember(_ key: String, _ value: [UInt8], in commit: inout Commit) {
        commit.require(key, .absent)
        commit.write("SET", key, value, "EX", Trust.seenTTL(maxAge: context.configuration.signatureMaxAge))
    }

    /// A replayed signed message: a `coordinate` is answered with the first copy's reply (as
    /// stored under the seen key), any other kind `already_processed`.
    private func replayed(_ commit: inout Commit, _ item: Item, _ stored: [UInt8], now: Date, refused: inout Refusal?) {
        if item.parsed.kind == .coordinate {
            replay(&commit, item, stored, now: now)
        } else {
            let refusal = Trust.replayRefusal()
            fail(&commit, item, refusal, now: now)
            refused = refusal
        }
    }

    private static func gathered(_ reply: RedisReply, versionKeys: [String], named: [String]) -> Gathered {
        let parts = reply.array ?? []
        var active: [Recommendation] = []
        if parts.count > 0 {
            for record in parts[0].array ?? [] {
                if let bytes = record.bytes, let decoded = try? RecommendationRecord.decode(bytes) {
                    active.append(decoded.recommendation)
                }
            }
        }
        let versionValues = parts.count > 1 ? parts[1].array ?? [] : []
        let namedFlags = parts.count > 2 ? parts[2].array ?? [] : []
        return Gathered(
            active: active,
            versions: versionKeys.enumerated().map { ($1, $0 < versionValues.count ? versionValues[$0].bytes : nil) },
            named: named.enumerated().map { ($1, $0 < namedFlags.count && namedFlags[$0].integer == 1) })
    }

    private func logDone(_ item: Item) {
        let parsed = item.parsed
        if let failure = parsed.failure {
            context.logger.notice("request refused", metadata: [
                "request_id": "\(parsed.requestID)", "kind": "\(parsed.kindName)",
                "code": "\(failure.code.rawValue)", "error": "\(failure.message)",
            ])
        } else {
            context.logger.debug("request done", metadata: ["request_id": "\(parsed.requestID)", "kind": "\(parsed.kindName)"])
        }
    }

    private func fail(_ commit: inout Commit, _ item: Item, _ failure: Refusal, now: Date) {
        let parsed = item.parsed
        let reply = WireMessages.errorReply(requestID: parsed.requestID, kind: parsed.kind?.rawValue ?? parsed.kindName, failure: failure)
        context.reply(reply, to: parsed.replyTo, in: &commit)
        if failure.isDeadLetter {
            context.deadLetter(item.raw, queue: context.keys.requests, failure: failure, now: now, in: &commit)
        }
    }

    /// A repeated `coordinate` (PROTOCOL.md 2.3): the first one's reply again, but only to the
    /// `reply_to` that made it; anyone else gets `conflict_state`.
    private func replay(_ commit: inout Commit, _ item: Item, _ stored: [UInt8], now: Date) {
        let parsed = item.parsed
        guard let cut = stored.firstIndex(of: 0x0A) else {
            fail(&commit, item, Refusal(.internal, "stored reply of request \(parsed.requestID) is unreadable"), now: now)
            return
        }
        let firstReplyTo = Array(stored[..<cut])
        guard firstReplyTo == Array((parsed.replyTo ?? "").utf8) else {
            fail(&commit, item, Refusal(.conflictState, "request_id: \(parsed.requestID) was already used by another request of this customer"), now: now)
            return
        }
        context.reply(Array(stored[(cut + 1)...]), to: parsed.replyTo, in: &commit)
    }

    /// The engine's outcome for one `coordinate` and the change it makes, guarded by what it
    /// read: every version field of an index read (as this batch left it), every id it names
    /// (present or absent), and the customer's lock (free, or ours).
    private func coordinate(_ item: Item, gathered: Gathered, batch: inout BatchState, lock: [UInt8]?,
                            now: Date) -> (result: [UInt8], change: CoordinationChange) {
        let request = item.request!
        let customer = request.customerID
        var ids = UUIDGenerator()
        let outcome = coordinator.coordinate(request, active: gathered.active + batch.kept, now: now, ids: &ids)
        let planOf = Dictionary(outcome.plans.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
        let approvalOf = Dictionary(outcome.approvals.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
        let records = outcome.kept.map { rec in
            RecommendationRecord(recommendation: rec, executeNow: request.executeNow, requestID: item.parsed.requestID,
                                 approvalID: approvalOf[rec.id], planID: planOf[rec.id])
        }
        let change = CoordinationChange(
            customer: customer,
            versions: gathered.versions.map { ($0.key, batch.versions[$0.key] ?? $0.value) },
            named: gathered.named.map { ($0.id, $0.active || batch.ids.contains($0.id)) },
            lock: lock.flatMap { $0.isEmpty ? nil : $0 },
            records: records, token: Array(ids.next().utf8),
            approvals: outcome.approvals, plans: outcome.plans, executeNow: request.executeNow, events: outcome.events)
        if !records.isEmpty {
            for rec in outcome.kept {
                for field in context.store.indexes(of: rec, customer: customer).versions { batch.versions[field] = change.token }
            }
            batch.kept.append(contentsOf: outcome.kept)
            for rec in outcome.kept { batch.ids.insert(rec.id) }
        }
        return (WireJSON.bytes(outcome.response), change)
    }

    /// Starts a pending plan (PROTOCOL.md 2.2): when its recommendation depends on nothing, the
    /// plan is marked running (`plan.started`, `started_at`) in this very commit and the reply
    /// is the plan as it starts; the executor that takes it from the ready list adopts it
    /// under its lease. A plan with dependencies is queued and answers `pending`: it starts
    /// when they complete.
    private func executePlan(_ parsed: Envelope.Parsed, stored: [UInt8]?, queued: Bool, record: [UInt8]?,
                             into commit: inout Commit, now: Date) -> Result<[UInt8], Refusal> {
        let keys = context.keys
        guard let stored else { return .failure(Refusal(.notFound, "plan_id: no plan \(WireLimits.quoted(parsed.planID))")) }
        guard let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(stored)) else {
            return .failure(Refusal(.internal, "plan \(parsed.planID) is stored in a form this daemon cannot read"))
        }
        if queued || plan.status != .pending {
            let state = queued && plan.status == .pending ? "already started" : plan.status.rawValue
            return .failure(Refusal(.conflictState, "plan \(plan.id) is \(state); only a pending plan that was never started can be executed"))
        }
        // The queued marker is the atomic "started" flag: a second execute_plan finds it.
        commit.require(keys.planQueued(plan.id), .absent)
        commit.require(keys.plan(plan.id), .equals(stored))
        if let record, var decoded = try? RecommendationRecord.decode(record), decoded.recommendation.dependencies.isEmpty {
            var machine = PlanMachine(plan: plan)
            let events = machine.start(now: now)
            if machine.plan.status == .running {
                commit.require(keys.active(customer: plan.customerID), .hashField(plan.recommendationID, exists: true))
                context.store.storePlan(machine.plan, into: &commit)
                context.events.emit(events, at: now, into: &commit)
                decoded.recommendation.status = .executing
                context.store.updateActive(decoded, customer: plan.customerID, into: &commit)
                context.store.queuePlan(plan.id, into: &commit)
                return .success(WireJSON.bytes(machine.plan))
            }
        }
        context.store.queuePlan(plan.id, into: &commit)
        return .success(stored)
    }
}
