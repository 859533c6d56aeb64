import Coordination
import Foundation
import RedisClient

extension RequestHandler {
    /// One item's commit, computed from the round's reads and what earlier items of the round
    /// decided: its refusal, its replay, or its effects with their reply.
    func commit(for index: Int, _ item: Item, round: inout RequestRound, inflight: String, popped: UInt64) -> Commit {
        var commit = Commit(acknowledging: item.raw, in: inflight)
        let now = round.now
        if let failure = item.parsed.failure {
            fail(&commit, item, failure, now: now)
            return commit
        }
        // PROTOCOL.md section 10: a signature out of its time window is refused; one already seen
        // within it is a replay, answered as a duplicate and changing nothing. The first
        // copy's commit writes the seen key, guarded absent, so of two copies racing (in
        // this batch or in two daemons) exactly one has effects.
        if let refusal = context.trust.refusal(signedAt: item.issuedAt, by: item.principal, now: now,
                                               maxAge: context.configuration.signatureMaxAge) {
            fail(&commit, item, refusal, now: now)
            round.refused[index] = refusal
            return commit
        }
        if answeredAsReplay(index, item, round: &round, into: &commit) { return commit }
        let dedupeKey = item.parsed.kind == .coordinate && item.parsed.requestIDGiven
            ? context.keys.dedupe(customer: item.request!.customerID, requestID: item.parsed.requestID) : nil
        if let dedupeKey, answeredAsRepeat(index, item, dedupeKey: dedupeKey, round: &round, into: &commit) { return commit }
        if let marker = round.stagedReply[index], let stored = round.results[marker.read].bytes {
            // A copy of a message whose staged commit finished (handed back meanwhile): the same reply.
            replay(&commit, item, stored, now: now)
            return commit
        }
        // Section 10: an agent may start and read only its own customers' plans and approvals.
        let stored = round.object[index].flatMap { round.results[$0].bytes }
        if let refusal = context.trust.refusal(item.parsed.kind!, stored: stored, by: item.principal) {
            fail(&commit, item, refusal, now: now)
            return commit
        }
        if let failure = unanswerable(index, item, round: round, popped: popped) {
            fail(&commit, item, failure, now: now)
            return commit
        }
        var coordination: CoordinationChange?
        let outcome = self.outcome(index, item, round: &round, coordination: &coordination, into: &commit)
        let seenKey = round.seen[index]?.key
        switch outcome {
        case .success(let result):
            let reply = WireMessages.okReply(requestID: item.parsed.requestID, kind: item.parsed.kind!.rawValue, result: result)
            let stored = Array((item.parsed.replyTo ?? "").utf8) + [0x0A] + reply
            if let change = coordination, seenKey == nil {
                // The common case, in the coordinate script's one call.
                if let dedupeKey { round.firstReplyOfRequest[dedupeKey] = stored }
                round.coordinateCalls[index] = (change, reply, dedupeKey, nil)
                return coordinateCommit(index, change, item, reply: reply, dedupe: dedupeKey, round: &round, inflight: inflight)
            }
            if let change = coordination, let seenKey, item.parsed.kind == .coordinate,
               let staged = signedStagedCommit(index, change, item, reply: reply, stored: stored, dedupe: dedupeKey,
                                               seen: seenKey, round: &round, inflight: inflight) {
                return staged
            }
            if let change = coordination { context.store.write(change, into: &commit, now: now) }
            if let dedupeKey {
                commit.require(dedupeKey, .absent)
                round.firstReplyOfRequest[dedupeKey] = stored
            }
            if let seenKey, item.parsed.kind == .coordinate, dedupeKey == nil {
                // A signed coordinate's replay gets this reply again, stored under the seen key
                // itself (by the reply's own write, the payload passed once).
                commit.require(seenKey, .absent)
                round.firstOfSignature[seenKey] = stored
                context.reply(reply, to: item.parsed.replyTo, dedupe: seenKey,
                              dedupeTTL: Trust.seenTTL(maxAge: context.configuration.signatureMaxAge), in: &commit)
            } else {
                // Other signed kinds are answered already_processed when replayed.
                if let seenKey { remember(seenKey, in: &commit, round: &round) }
                context.reply(reply, to: item.parsed.replyTo, dedupe: dedupeKey, in: &commit)
            }
        case .failure(let failure):
            fail(&commit, item, failure, now: now)
            round.refused[index] = failure
            if let seenKey { remember(seenKey, in: &commit, round: &round) }
        }
        return commit
    }

    /// A `coordinate`'s change in `coordinate.lua`'s one call, or staged (`StagedCommit`) when
    /// too large for one short call: then its first call, the others made once it applied.
    func coordinateCommit(_ index: Int, _ change: CoordinationChange, _ item: Item, reply: [UInt8], dedupe: String?,
                          round: inout RequestRound, inflight: String) -> Commit {
        let store = context.store
        if let staged = store.stagedCommit(change, acknowledging: item.raw, in: inflight, reply: reply,
                                           replyTo: item.parsed.replyTo, dedupe: dedupe, now: round.now) {
            round.staged[index] = staged
            return Commit(call: staged.open)
        }
        round.staged[index] = nil
        return store.commit(change, acknowledging: item.raw, in: inflight, reply: reply, replyTo: item.parsed.replyTo,
                            dedupe: dedupe, now: round.now)
    }

    /// A signed `coordinate`'s change staged (`StagedCommit`) when too large for one call, with
    /// its replay mark: the seen key stores the reply itself when there is no request_id (as
    /// the generic commit's reply does), else it is set beside the request_id's record. Nil
    /// when it fits one call (the generic commit then makes it). `stored` ("reply_to\nreply")
    /// is what later items of the round see as its answer; nil when rebuilt with late guards.
    func signedStagedCommit(_ index: Int, _ change: CoordinationChange, _ item: Item, reply: [UInt8], stored: [UInt8]?,
                            dedupe: String?, seen: String, round: inout RequestRound, inflight: String) -> Commit? {
        let ttl = Trust.seenTTL(maxAge: context.configuration.signatureMaxAge)
        let store = context.store
        let staged = dedupe == nil
            ? store.stagedCommit(change, acknowledging: item.raw, in: inflight, reply: reply, replyTo: item.parsed.replyTo,
                                 dedupe: seen, dedupeTTL: ttl, now: round.now)
            : store.stagedCommit(change, acknowledging: item.raw, in: inflight, reply: reply, replyTo: item.parsed.replyTo,
                                 dedupe: dedupe, seen: (seen, ttl), now: round.now)
        guard let staged else { return nil }
        if let stored {
            if let dedupe { round.firstReplyOfRequest[dedupe] = stored }
            round.firstOfSignature[seen] = dedupe == nil ? stored : Self.seenMark
            round.coordinateCalls[index] = (change, reply, dedupe, seen)
        }
        round.staged[index] = staged
        return Commit(call: staged.open)
    }

    /// A signed message whose signature was already seen (or is being, earlier in this
    /// round): answered as a replay. A signed `coordinate` with a request_id is left to the
    /// request_id's stored reply, unless that expired (a `--dedupe-ttl` shorter than the
    /// signature window), when the replay is still refused.
    private func answeredAsReplay(_ index: Int, _ item: Item, round: inout RequestRound, into commit: inout Commit) -> Bool {
        guard let seen = round.seen[index] else { return false }
        var marker = round.results[seen.read].bytes
        if marker == nil, let first = round.firstOfSignature[seen.key] {
            commit.require(seen.key, .equals(first))
            marker = first
        }
        guard let marker else { return false }
        let parsed = item.parsed
        if marker == Self.seenMark, parsed.kind == .coordinate, parsed.requestIDGiven {
            let key = context.keys.dedupe(customer: item.request!.customerID, requestID: parsed.requestID)
            guard round.dedupe[index].flatMap({ round.results[$0].bytes }) == nil && round.firstReplyOfRequest[key] == nil else {
                return false
            }
            let refusal = Trust.replayRefusal()
            fail(&commit, item, refusal, now: round.now)
            round.refused[index] = refusal
            return true
        }
        replayed(&commit, item, marker, now: round.now, refused: &round.refused[index])
        return true
    }

    /// A `coordinate` whose request_id was answered before (PROTOCOL.md 2.3), or earlier in
    /// this round: answered with that reply. A stored reply the daemon cannot read fails the
    /// request alone.
    private func answeredAsRepeat(_ index: Int, _ item: Item, dedupeKey: String, round: inout RequestRound,
                                  into commit: inout Commit) -> Bool {
        if let read = round.dedupe[index] {
            if let error = round.results[read].errorMessage {
                fail(&commit, item, Refusal(.internal, "reading request_id \(item.parsed.requestID)'s stored reply failed: \(error)"),
                     now: round.now)
                return true
            }
            if let stored = round.results[read].bytes {
                replay(&commit, item, stored, now: round.now)
                return true
            }
        }
        if let first = round.firstReplyOfRequest[dedupeKey] {
            // The same request twice in one batch: answered like the first, once the first's
            // commit has stored that answer.
            commit.require(dedupeKey, .equals(first))
            replay(&commit, item, first, now: round.now)
            return true
        }
        return false
    }

    /// A `coordinate` that cannot be computed: the customer's state is not what the daemon
    /// wrote (a hostile writer), or it kept losing rounds past the lock's safety net. That
    /// request's failure alone.
    private func unanswerable(_ index: Int, _ item: Item, round: RequestRound, popped: UInt64) -> Refusal? {
        guard item.parsed.kind == .coordinate, let read = round.coordinate[index] else { return nil }
        let customer = item.request!.customerID
        if let error = read.read?.lazy.compactMap({ round.results[$0].errorMessage }).first {
            return Refusal(.internal, "reading customer \(customer)'s state failed: \(error)")
        }
        if item.rounds > Self.roundsBeforeLock, DaemonMetrics.now() &- popped >= Self.giveUpNanoseconds {
            return Refusal(.internal, "lost \(item.rounds) rounds to concurrent changes of customer \(customer)")
        }
        return nil
    }

    /// What the request's kind answers, and for a `coordinate` the change it makes.
    private func outcome(_ index: Int, _ item: Item, round: inout RequestRound, coordination: inout CoordinationChange?,
                         into commit: inout Commit) -> Result<[UInt8], Refusal> {
        let parsed = item.parsed
        let now = round.now
        switch parsed.kind! {
        case .coordinate:
            let customer = item.request!.customerID
            let read = round.coordinate[index]!
            let gathered = read.read.map { Self.gathered($0.map { round.results[$0] }, versionFields: read.versionFields, named: read.named) }
                ?? Gathered(active: [], versions: read.versionFields.map { ($0, nil) }, named: read.named.map { ($0, false) })
            var lock: [UInt8]?
            if let taken = round.locks[customer], round.results[taken.read].string == "OK" {
                lock = taken.token
                round.locks[customer]?.token = []
            }
            let computed = coordinate(index, item, gathered: gathered, batch: &round.batch[customer, default: BatchState()],
                                      lock: lock, now: now)
            coordination = computed.change
            return .success(computed.result)
        case .getPlan:
            return round.results[round.object[index]!].bytes.map { .success($0) }
                ?? .failure(Refusal(.notFound, "plan_id: no plan \(WireLimits.quoted(parsed.planID))"))
        case .executePlan:
            return executePlan(parsed, stored: round.results[round.object[index]!].bytes,
                               queued: round.results[round.queued[index]!].integer == 1,
                               record: round.planRecords[index]?.bytes, into: &commit, now: now)
        case .getApproval:
            return round.results[round.object[index]!].bytes.map { .success($0) }
                ?? .failure(Refusal(.notFound, "approval_id: no approval \(WireLimits.quoted(parsed.approvalID))"))
        case .listApprovals:
            let approvals = round.results[round.object[index]!].array ?? []
            var w = JSONWriter(capacity: 64 + approvals.count * 512)
            w.beginObject()
            w.key("approvals")
            w.beginArray()
            for approval in approvals { if let bytes = approval.bytes { w.raw(bytes) } }
            w.endArray()
            w.key("count"); w.int(approvals.count)
            w.endObject()
            return .success(w.bytes)
        }
    }
}
