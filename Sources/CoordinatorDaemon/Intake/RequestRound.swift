import Coordination
import Foundation
import RedisClient

/// One read-compute-commit round of a batch of requests: what was read for each item, and
/// what earlier items of the round decided that later ones must see.
struct RequestRound {
    /// What a `coordinate` reads. `read` nil: committed optimistically, as if the reads had
    /// found nothing (see `RequestHandler.readCoordinate`).
    struct CoordinateRead {
        var read: [Reads.Handle]?
        var versionFields: [String]
        var named: [String]
    }

    var dedupe: [Int: Reads.Handle] = [:]
    var object: [Int: Reads.Handle] = [:]
    var queued: [Int: Reads.Handle] = [:]
    var coordinate: [Int: CoordinateRead] = [:]
    /// Customer locks this round tries to take; a token emptied once an item used it.
    var locks: [String: (read: Reads.Handle, token: [UInt8])] = [:]
    var seen: [Int: (read: Reads.Handle, key: String)] = [:]
    /// execute_plan: the record of the plan's recommendation.
    var planRecords: [Int: RedisReply] = [:]
    var results: ReadResults!

    var batch: [String: RequestHandler.BatchState] = [:]
    /// A `coordinate` committed by its script: what the call was built from, to build it again
    /// with the guards later items of the batch found it owes (`BatchState.lateGuards`).
    var coordinateCalls: [Int: (change: CoordinationChange, reply: [UInt8], dedupe: String?, seen: String?)] = [:]
    /// A `coordinate` too large for one call, committed in parts (`StagedCommit`).
    var staged: [Int: StagedCommit] = [:]
    /// A large `coordinate` without request_id: the reply its staged commit stored, if any.
    var stagedReply: [Int: (read: Reads.Handle, key: String)] = [:]
    var firstReplyOfRequest: [String: [UInt8]] = [:]
    var firstOfSignature: [String: [UInt8]] = [:]
    /// How each refused item ended, for the metrics.
    var refused: [Int: Refusal] = [:]

    var now: Date { results.now }
}

extension RequestHandler {
    /// One round; returns the items whose commit found its reads stale.
    func attempt(_ items: [Item], inflight: String, connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        var round = RequestRound()
        var reads = Reads()
        for (index, item) in items.enumerated() where item.parsed.failure == nil {
            plan(index, item, reads: &reads, round: &round)
        }
        round.results = try context.store.read(reads, on: connection)
        try readPlanRecords(items, round: &round, connection: connection)

        var commits = items.enumerated().map { index, item in
            commit(for: index, item, round: &round, inflight: inflight, popped: popped)
        }
        addLateGuards(to: &commits, items, round: &round, inflight: inflight)
        // A lock taken this round but not used (its item was answered otherwise) is freed.
        let unused = round.locks.filter { !$0.value.token.isEmpty && round.results[$0.value.read].string == "OK" }.map(\.key)
        let staged = round.staged.sorted { $0.key < $1.key }
        // A staged commit's later parts are written before its first call (which checks them).
        for (_, commit) in staged { try context.store.prepare(commit, on: connection) }
        var results = try Commit.apply(commits, on: connection, metrics: context.metrics)
        var unopened: [RedisCommand] = []
        for (index, commit) in staged {
            if results[index] == .applied {
                results[index] = try context.store.finish(commit, on: connection, metrics: context.metrics)
            } else {
                unopened.append(RedisCommand("DEL", commit.partsKey))  // its parts, written for nothing
            }
        }
        if !unopened.isEmpty { _ = try connection.pipeline(unopened) }
        try context.store.releaseCustomerLocks(unused, on: connection)
        return try settle(items, results, round: round, inflight: inflight, connection: connection, popped: popped)
    }

    /// An item whose version fields later items of the batch guarded by its token also
    /// guards them at the values those items read (`BatchState`).
    private func addLateGuards(to commits: inout [Commit], _ items: [Item], round: inout RequestRound, inflight: String) {
        for state in round.batch.values {
            for (index, guards) in state.lateGuards {
                if let call = round.coordinateCalls[index] {
                    var change = call.change
                    change.versions += guards
                    if let seen = call.seen {
                        if let staged = signedStagedCommit(index, change, items[index], reply: call.reply, stored: nil,
                                                           dedupe: call.dedupe, seen: seen, round: &round, inflight: inflight) {
                            commits[index] = staged
                        }
                    } else {
                        commits[index] = coordinateCommit(index, change, items[index], reply: call.reply, dedupe: call.dedupe,
                                                          round: &round, inflight: inflight)
                    }
                } else {
                    let versions = context.keys.versions(customer: items[index].request!.customerID)
                    for (field, value) in guards { commits[index].require(versions, .hashFieldValue(field, value)) }
                }
            }
        }
    }

    /// The reads one item needs, all in the round's one round trip.
    private func plan(_ index: Int, _ item: Item, reads: inout Reads, round: inout RequestRound) {
        let store = context.store
        if let key = seenKey(item) { round.seen[index] = (store.readSeen(key, into: &reads), key) }
        switch item.parsed.kind {
        case .coordinate:
            readCoordinate(index, item, reads: &reads, round: &round)
        case .getPlan, .executePlan:
            let handles = store.readPlan(item.parsed.planID, into: &reads)
            round.object[index] = handles.plan
            round.queued[index] = handles.queued
        case .getApproval:
            round.object[index] = store.readApproval(item.parsed.approvalID, into: &reads)
        case .listApprovals:
            round.object[index] = store.readPendingApprovals(customer: item.parsed.customerID, into: &reads)
        case nil:
            break
        }
    }

    /// What a `coordinate` can conflict with: the index sets of its resources, of the actions
    /// contradicting its customer-wide ones, the customer-wide set when one of its actions has
    /// a contradiction, and the ids it names (PROTOCOL.md section 9).
    ///
    /// A customer with no state (most requests are a new customer's) is committed without
    /// reading: the commit's guards (every version field and named id absent, the request_id
    /// unused) are exactly what an empty read would have set, so a customer that does hold
    /// state only makes the commit stale, and the next round reads. Signed messages read
    /// first (their replay check needs the request_id's stored reply).
    private func readCoordinate(_ index: Int, _ item: Item, reads: inout Reads, round: inout RequestRound) {
        let keys = context.keys
        let store = context.store
        let request = item.request!
        let customer = request.customerID
        let optimistic = !item.readFirst && item.rounds == 0 && item.signatureDigest == nil && !hasState(customer)
        if item.parsed.requestIDGiven, !optimistic {
            round.dedupe[index] = store.readStoredReply(customer: customer, requestID: item.parsed.requestID, into: &reads)
        }
        if !item.parsed.requestIDGiven, !optimistic, Store.couldBeStaged(request) {
            let key = store.stagedMarker(customer: customer, message: item.raw)
            round.stagedReply[index] = (store.readSeen(key, into: &reads), key)
        }
        if item.rounds >= Self.roundsBeforeLock, round.locks[customer] == nil {
            var tokens = UUIDGenerator()
            let token = Array(tokens.next().utf8)
            round.locks[customer] = (store.takeCustomerLock(customer, token: token, ms: Self.lockMs, into: &reads), token)
        }
        var sets: [String] = []
        var fields: [String] = []
        var seenSets = Set<String>()
        func add(_ set: String, _ field: String) {
            if seenSets.insert(set).inserted { sets.append(set); fields.append(field) }
        }
        var named: [String] = []
        var seenNamed = Set<String>()
        // A recommendation with resources conflicts with a customer-wide active one only
        // through an action that contradicts its own: when none of the request's does, the
        // customer-wide ones are not read (24,000 of them pending with made-up actions cost
        // such a request nothing).
        var canMeetWide = false
        let contradicting = context.configuration.engine.actionConflicts
        for rec in request.recommendations {
            let contra = contradicting.contradicting[rec.action] ?? []
            if rec.affectedResources.isEmpty {
                for action in contra { add(keys.actionIndex(customer: customer, action: action), Keys.actionVersion(action)) }
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
        let read = optimistic ? nil : store.readActive(customer: customer, sets: sets, versionFields: fields, named: named, into: &reads)
        round.coordinate[index] = RequestRound.CoordinateRead(read: read, versionFields: fields, named: named)
    }

    /// execute_plan: the plan's recommendation, to know whether it can start right now.
    private func readPlanRecords(_ items: [Item], round: inout RequestRound, connection: RedisConnection) throws(RedisError) {
        var wanted: [(index: Int, customer: String, id: String)] = []
        for (index, item) in items.enumerated() where item.parsed.failure == nil && item.parsed.kind == .executePlan {
            guard let bytes = round.results[round.object[index]!].bytes,
                  let plan = try? ExecutionPlan(stored: bytes) else { continue }
            wanted.append((index, plan.customerID, plan.recommendationID))
        }
        let replies = try context.store.readActiveRecords(wanted.map { ($0.customer, $0.id) }, on: connection)
        for (entry, reply) in zip(wanted, replies) { round.planRecords[entry.index] = reply }
    }

    /// How each item's commit went: counted and logged when applied, computed again when
    /// stale, dead-lettered when Redis refused its write.
    private func settle(_ items: [Item], _ results: [Commit.Result], round: RequestRound, inflight: String,
                        connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        var stale: [Item] = []
        var withState: [String] = []
        var failed: [(Item, String)] = []
        // Redis refusing writes (a replica's READONLY inside the script): the batch's pause, its
        // messages left in flight, not each message's failure.
        var refusal: RedisError?
        var undeliverable: [(raw: [UInt8], replyTo: String, error: String)] = []
        for (index, result) in results.enumerated() {
            let item = items[index]
            switch result {
            case .applied, .appliedReplyUndeliverable:
                context.counters.add(processed: 1)
                context.metrics.request(kind: item.parsed.kindName, round.refused[index] ?? item.parsed.failure, since: popped)
                logDone(item)
                if case .appliedReplyUndeliverable(let error) = result {
                    undeliverable.append((item.raw, item.parsed.replyTo ?? "", error))
                }
                if round.coordinate[index] != nil, let customer = item.request?.customerID { withState.append(customer) }
            case .messageGone:
                context.logger.warning("message was taken over by another worker before its commit; left to it",
                                       metadata: ["request_id": "\(item.parsed.requestID)"])
            case .journaled:
                // A staged commit holds the customer: finished from its journal, then computed
                // again; unless it was this very message's (handed back after its owner died),
                // which the journal's last part has now answered.
                if try context.store.rollForward(customer: item.request!.customerID, holding: (item.raw, inflight),
                                                 on: connection, metrics: context.metrics) {
                    context.counters.add(processed: 1)
                    context.metrics.request(kind: item.parsed.kindName, nil, since: popped)
                    logDone(item)
                    continue
                }
                var again = item
                again.readFirst = true
                stale.append(again)
            case .stale:
                var again = item
                if let read = round.coordinate[index], read.read == nil {
                    // An optimistic commit that found state: not a lost round, just a read owed.
                    again.readFirst = true
                    withState.append(item.request!.customerID)
                } else {
                    again.rounds += 1
                }
                // A signed request's generic commit cannot tell a staged commit's lock from a
                // short one: past the rounds that take a lock, it finishes any journal first.
                if item.signatureDigest != nil, again.rounds >= Self.roundsBeforeLock, item.parsed.kind == .coordinate,
                   try context.store.rollForward(customer: item.request!.customerID, holding: (item.raw, inflight),
                                                 on: connection, metrics: context.metrics) {
                    context.counters.add(processed: 1)
                    context.metrics.request(kind: item.parsed.kindName, nil, since: popped)
                    logDone(item)
                    continue
                }
                stale.append(again)
            case .failed(let message):
                if let outage = Commit.refusal(in: message) { refusal = outage } else { failed.append((item, message)) }
            }
        }
        if !withState.isEmpty { rememberState(of: withState) }
        try context.deadLetterUndeliverable(undeliverable, queue: context.keys.requests, now: round.now, connection: connection)
        if !failed.isEmpty { try settleFailed(failed, inflight: inflight, now: round.now, connection: connection) }
        if let refusal { throw refusal }
        return stale
    }
}
