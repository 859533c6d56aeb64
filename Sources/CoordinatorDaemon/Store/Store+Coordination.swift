import Coordination
import Foundation
import RedisClient

/// What one `coordinate` changes, as the engine decided it, and what guards it: the reads it
/// was computed from must still hold when it commits.
struct CoordinationChange {
    var customer: String
    /// The version fields of the indexes read, with the token each held (nil: absent).
    var versions: [(field: String, value: [UInt8]?)]
    /// The ids the request names, and whether each was active.
    var named: [(id: String, active: Bool)]
    /// The customer's lock, when this commit holds it (and releases it).
    var lock: [UInt8]?
    /// The recommendations kept, now active.
    var records: [RecommendationRecord]
    /// The token their indexes' version fields take.
    var token: [UInt8]
    var approvals: [Approval]
    var plans: [ExecutionPlan]
    var executeNow: Bool
    var events: [DomainEvent]
}

/// Where kept recommendations go: the active hash's field-value pairs, the members of each
/// index set, and the version fields bumped.
struct IndexEntries {
    var records: [[UInt8]] = []
    var members: [String: [[UInt8]]] = [:]
    var bumped = Set<String>()
}

extension Store {
    /// The entries `records` add to the customer's active hash, index sets and versions.
    func indexEntries(of records: [RecommendationRecord], customer: String) -> IndexEntries {
        var entries = IndexEntries()
        entries.records.reserveCapacity(records.count * 2)
        for record in records {
            let rec = record.recommendation
            entries.records.append(Array(rec.id.utf8))
            entries.records.append(record.encoded())
            let (sets, versions) = indexes(of: rec, customer: customer)
            for set in sets { entries.members[set, default: []].append(Array(rec.id.utf8)) }
            entries.bumped.formUnion(versions)
        }
        return entries
    }

    /// The change as writes of the generic commit (a signed message's commit, whose replay
    /// marks need the generic guards).
    func write(_ change: CoordinationChange, into commit: inout Commit, now: Date) {
        let customer = change.customer
        let versions = keys.versions(customer: customer)
        for (field, value) in change.versions { commit.require(versions, .hashFieldValue(field, value)) }
        for (id, active) in change.named {
            commit.require(keys.active(customer: customer), .hashField(id, exists: active))
        }
        commit.require(keys.customerLock(customer), .absentOrEquals(change.lock ?? []))
        if change.lock != nil { releaseCustomerLock(customer, into: &commit) }
        keepRecommendations(change.records, customer: customer, token: change.token, into: &commit)
        for approval in change.approvals { requestApproval(approval, into: &commit) }
        for plan in change.plans { createPlan(plan, executeNow: change.executeNow, into: &commit) }
        events.emit(change.events, at: now, into: &commit)
    }

    /// The change as one call of `coordinate.lua`, with its reply (pushed to `replyTo`,
    /// remembered under `dedupe`) and the acknowledgement of `message` in `inflight`.
    func commit(_ change: CoordinationChange, acknowledging message: [UInt8], in inflight: String,
                reply: [UInt8], replyTo: String?, dedupe: String?, now: Date) -> Commit {
        Commit(call: coordinateCall(change, message: message, inflight: inflight, reply: reply, replyTo: replyTo,
                                    dedupe: dedupe, stage: .whole, now: now))
    }

    /// Which call of a commit a `coordinate.lua` call is (`Store+StagedCommit.swift`).
    enum Stage {
        case whole
        /// The first of `parts` calls (the later ones written to `journalParts` before it).
        case open(parts: Int)
        /// Call `number` of a staged commit: one of its data, the one storing its reply (under
        /// the request_id, or `marker` without one), or the last, answering.
        case part(Int, role: PartRole, marker: String)
    }

    enum PartRole {
        case data, storesReply, answers
    }

    /// One call of `coordinate.lua` (its header gives KEYS and ARGV).
    ///
    /// `dedupe` holds the reply for `dedupeTTL` (`--dedupe-ttl` when nil): a request_id's
    /// record, or a signed message's seen key when it has none. `seen`: a signed message's
    /// replay mark besides a request_id's record (staged commits only).
    func coordinateCall(_ change: CoordinationChange, message: [UInt8], inflight: String, reply: [UInt8],
                        replyTo: String?, dedupe: String?, dedupeTTL: Int? = nil, seen: (key: String, ttl: Int)? = nil,
                        stage: Stage, now: Date) -> RedisCommand {
        let customer = change.customer
        let entries = indexEntries(of: change.records, customer: customer)
        let sets = entries.members.keys.sorted()
        var answers = true, opening = false, stores = false, sendsReply = true, stageNumber = 0, marker: String?
        var flags = ""
        switch stage {
        case .whole:
            if change.lock != nil { flags += "L" }
        case .open(let parts):
            flags += "S"
            opening = true
            stageNumber = parts
            answers = false
        case .part(let number, let role, let key):
            flags += role == .answers ? "PFL" : role == .storesReply ? "PR" : "P"
            stageNumber = number
            answers = role != .data
            stores = role == .storesReply
            sendsReply = stores
            if answers, dedupe == nil {
                flags += "M"
                marker = key
            }
        }
        if dedupe != nil, opening || answers { flags += "d" }
        if outbox != nil, answers, !stores { flags += "o" }
        if seen != nil, opening || stores { flags += "V" }
        if configuration.replyPrefix != nil { flags += "a" }
        if change.executeNow { flags += "x" }

        var keyList: [String] = [
            inflight, keys.active(customer: customer), keys.versions(customer: customer), keys.customerLock(customer),
            keys.eventStream, keys.heldPlans, keys.readyPlans, keys.pendingApprovals, keys.pendingApprovals(customer: customer),
            keys.journal(customer: customer),
            change.lock.map { keys.journalParts(customer: customer, token: String(decoding: $0, as: UTF8.self)) }
                ?? keys.journal(customer: customer),
        ]
        if let dedupe, flags.contains("d") { keyList.append(dedupe) }
        if let outbox, flags.contains("o") { keyList.append(outbox) }
        if let marker { keyList.append(marker) }
        if let seen, flags.contains("V") { keyList.append(seen.key) }
        keyList.append(contentsOf: sets)
        keyList.append(contentsOf: change.approvals.map { keys.approval($0.id) })
        keyList.append(contentsOf: change.plans.map { keys.plan($0.id) })
        if change.executeNow { keyList.append(contentsOf: change.plans.map { keys.planQueued($0.id) }) }

        let encodedEvents = events.encode(change.events, at: now)
        var args: [[UInt8]] = []
        args.reserveCapacity(40 + keyList.count + 2 * (change.versions.count + change.named.count) + entries.records.count)
        args.append(Array("EVALSHA".utf8))
        args.append(Array(Scripts.coordinate.sha1.utf8))
        args.append(Array(String(keyList.count).utf8))
        for key in keyList { args.append(Array(key.utf8)) }
        func number(_ n: Int) { args.append(Array(String(n).utf8)) }
        args.append(message)
        args.append(Array(flags.utf8))
        args.append(change.lock ?? [])
        args.append(answers && sendsReply ? reply : [])
        number(configuration.replyTTL)
        number(configuration.replyMax)
        number(dedupeTTL ?? configuration.dedupeTTL)
        args.append(Array(keys.events.utf8))
        number(events.streamMaxLength)
        for count in [sets.count, change.approvals.count, change.plans.count, change.versions.count,
                      change.named.count, change.records.count, encodedEvents.count] { number(count) }
        args.append(change.token)
        args.append(Array((answers ? replyTo ?? "" : "").utf8))
        number(stageNumber)
        number(seen?.ttl ?? 0)
        Self.appendItems(of: change, entries: entries, sets: sets, events: encodedEvents, to: &args)
        return RedisCommand(arguments: args)
    }

    /// `coordinate.lua`'s arguments after the fixed ones: version guards, named ids, records,
    /// index sets, bumped version fields, approvals, plans and events (its header's order).
    private static func appendItems(of change: CoordinationChange, entries: IndexEntries, sets: [String],
                                    events: [(type: String, json: [UInt8])], to args: inout [[UInt8]]) {
        func number(_ n: Int) { args.append(Array(String(n).utf8)) }
        for (field, value) in change.versions {
            args.append(Array(field.utf8))
            args.append(value ?? [])
        }
        for (id, active) in change.named {
            args.append(Array(id.utf8))
            args.append([active ? UInt8(ascii: "1") : UInt8(ascii: "0")])
        }
        args.append(contentsOf: entries.records)
        for set in sets {
            let ids = entries.members[set]!
            number(ids.count)
            args.append(contentsOf: ids)
        }
        number(entries.bumped.count)
        for field in entries.bumped.sorted() { args.append(Array(field.utf8)) }
        for approval in change.approvals {
            args.append(Array(approval.id.utf8))
            args.append(WireJSON.bytes(approval))
            number(Int(approval.expiresAt.timeIntervalSince1970 * 1000))
        }
        for plan in change.plans {
            args.append(Array(plan.id.utf8))
            args.append(WireJSON.bytes(plan))
            number(Int(plan.createdAt.timeIntervalSince1970 * 1000))
        }
        for event in events {
            args.append(Array(event.type.utf8))
            args.append(event.json)
        }
    }
}
