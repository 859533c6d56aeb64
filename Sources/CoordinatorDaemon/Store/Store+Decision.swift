import Coordination
import Foundation
import RedisClient

/// What one approval decision changes, as the policy decided it, and what guards it: the
/// approval must still be exactly as it was read (of two daemons deciding it at once, one
/// wins and the other decides again from what the winner wrote).
struct DecisionChange {
    /// What the decision does besides its reply.
    enum Effect {
        /// Refused by the rules: the approval stays as it is.
        case none
        /// A vote that leaves the approval pending (the first of a critical one's two).
        case vote(Approval)
        /// The final approval; the recommendation, when still active, approved (its record
        /// already naming the plan) with its new plan.
        case approved(Approval, record: RecommendationRecord?, plan: ExecutionPlan?)
        /// Rejected, or expired by a decision that came late: the recommendation leaves the
        /// active set and its indexes, and the plans waiting on it are woken.
        case ended(Approval, record: RecommendationRecord?, status: RecommendationStatus)
    }

    /// The approval as read, and its exact bytes (the guard).
    var read: Approval
    var stored: [UInt8]
    var effect: Effect = .none
    var events: [DomainEvent] = []
    /// A signed decision's replay mark (PROTOCOL.md section 10), guarded absent and written with it.
    var seen: (key: String, ttl: Int)?
    /// The dead letter of a decision the rules refuse as malformed.
    var deadLetter: [UInt8]?
}

extension Store {
    /// The decision as one call of `decide.lua`, with its reply (pushed to `replyTo`) and the
    /// acknowledgement of `message` in `inflight`.
    func commit(_ decision: DecisionChange, acknowledging message: [UInt8], in inflight: String,
                reply: [UInt8], replyTo: String?, now: Date) -> Commit {
        let approval = decision.read
        let call = DecisionCall(self, decision, inflight: inflight)
        let encodedEvents = events.encode(decision.events, at: now)
        var args: [[UInt8]] = []
        args.reserveCapacity(3 + call.keys.count + 22 + call.versionFields.count + 2 * encodedEvents.count)
        func text(_ s: String) { args.append(Array(s.utf8)) }
        func number(_ n: Int) { text(String(n)) }
        text("EVALSHA")
        text(Scripts.decide.sha1)
        number(call.keys.count)
        for key in call.keys { text(key) }
        args.append(message)
        text(call.flags)
        text(RedisScript.sha1Hex(decision.stored))
        text(approval.id)
        args.append(call.written.map { WireJSON.bytes($0) } ?? [])
        text(approval.recommendationID)
        args.append(call.record?.encoded() ?? [])
        args.append(reply)
        number(configuration.replyTTL)
        number(configuration.replyMax)
        text(replyTo ?? "")
        text(keys.events)
        number(events.streamMaxLength)
        number(encodedEvents.count)
        number(decision.seen?.ttl ?? 0)
        args.append(decision.deadLetter ?? [])
        number(configuration.deadLetterMax)
        number(configuration.retention)
        args.append(contentsOf: newPlanArguments(call.plan))
        number(call.versionFields.count)
        for field in call.versionFields { text(field) }
        for event in encodedEvents {
            text(event.type)
            args.append(event.json)
        }
        return Commit(call: RedisCommand(arguments: args))
    }

    /// A new plan as `decide.lua` (its `create_plan` in `shared.lua`) takes it: id, JSON,
    /// creation (ms); empty values for none. Plans' storage is spelled here and there alone.
    private func newPlanArguments(_ plan: ExecutionPlan?) -> [[UInt8]] {
        guard let plan else { return [[], [], Array("0".utf8)] }
        return [Array(plan.id.utf8), WireJSON.bytes(plan), Array(String(Int(plan.createdAt.timeIntervalSince1970 * 1000)).utf8)]
    }
}

/// What one call of `decide.lua` is given besides the payloads: its flags and KEYS (see the
/// script's header), the approval and record it writes, the plan it creates, and the version
/// fields of the index sets a retired recommendation leaves.
private struct DecisionCall {
    var flags = ""
    var keys: [String]
    var written: Approval?
    var record: RecommendationRecord?
    var plan: ExecutionPlan?
    var versionFields: [String] = []

    init(_ store: Store, _ decision: DecisionChange, inflight: String) {
        let layout = store.keys
        let customer = decision.read.customerID
        keys = [
            inflight, layout.approval(decision.read.id), layout.pendingApprovals, layout.pendingApprovals(customer: customer),
            layout.eventStream, layout.active(customer: customer), layout.versions(customer: customer), layout.readyPlans,
            layout.heldPlans,
        ]
        if let seen = decision.seen { flags += "s"; keys.append(seen.key) }
        if decision.deadLetter != nil { flags += "d"; keys.append(layout.dead) }
        if let outbox = store.outbox { flags += "o"; keys.append(outbox) }
        if store.configuration.replyPrefix != nil { flags += "a" }
        add(decision.effect, store, customer: customer, recommendation: decision.read.recommendationID)
    }

    private mutating func add(_ effect: DecisionChange.Effect, _ store: Store, customer: String, recommendation: String) {
        let layout = store.keys
        switch effect {
        case .none:
            break
        case .vote(let next):
            written = next
        case .approved(let next, let approved, let created):
            written = next
            record = approved
            plan = created
            flags += approved == nil ? "f" : "fu"
            if let created {
                flags += "p"
                keys.append(layout.plan(created.id))
                if approved?.executeNow == true { flags += "x"; keys.append(layout.planQueued(created.id)) }
            }
        case .ended(let next, let retired, let status):
            written = next
            flags += "fr"
            keys.append(layout.recommendation(customer: customer, id: recommendation))
            keys.append(layout.waiters(customer: customer, recommendation: recommendation))
            if var retired {
                let (sets, fields) = store.indexes(of: retired.recommendation, customer: customer)
                keys.append(contentsOf: sets)
                versionFields = fields
                retired.recommendation.status = status
                record = retired
            }
        }
    }
}
