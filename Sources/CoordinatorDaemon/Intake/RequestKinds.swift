import Coordination
import Foundation
import RedisClient

extension RequestHandler {
    static func gathered(_ replies: [RedisReply], versionFields: [String], named: [String]) -> Gathered {
        var active: [Recommendation] = []
        var seen = Set<String>()
        var versionValues: [RedisReply] = []
        var namedFlags: [RedisReply] = []
        // One reply per call of `gatherActive` (`Store.readActive`); a record two calls found is kept once.
        for reply in replies {
            let parts = reply.array ?? []
            if parts.count > 0 {
                for record in parts[0].array ?? [] {
                    if let bytes = record.bytes, let decoded = try? RecommendationRecord.decode(bytes),
                       replies.count == 1 || seen.insert(decoded.recommendation.id).inserted {
                        active.append(decoded.recommendation)
                    }
                }
            }
            if parts.count > 1 { versionValues += parts[1].array ?? [] }
            if parts.count > 2 { namedFlags += parts[2].array ?? [] }
        }
        return Gathered(
            active: active,
            versions: versionFields.enumerated().map { ($1, $0 < versionValues.count ? versionValues[$0].bytes : nil) },
            named: named.enumerated().map { ($1, $0 < namedFlags.count && namedFlags[$0].integer == 1) })
    }

    /// The engine's outcome for one `coordinate` and the change it makes, guarded by what it
    /// read: every version field of an index read (as this batch left it), every id it names
    /// (present or absent), and the customer's lock (free, or ours).
    func coordinate(_ index: Int, _ item: Item, gathered: Gathered, batch: inout BatchState, lock: [UInt8]?,
                    now: Date) -> (result: [UInt8], change: CoordinationChange) {
        let request = item.request!
        let customer = request.customerID
        var ids = context.newIDs()
        let outcome = coordinator.coordinate(request, active: gathered.active + batch.kept, now: now, ids: &ids)
        let planOf = Dictionary(outcome.plans.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
        let approvalOf = Dictionary(outcome.approvals.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
        let records = outcome.kept.map { rec in
            RecommendationRecord(recommendation: rec, executeNow: request.executeNow, requestID: item.parsed.requestID,
                                 approvalID: approvalOf[rec.id], planID: planOf[rec.id])
        }
        // Each field read is guarded at the value read, or by the token an earlier item of the
        // batch sets it to; the field's writers before this item then owe guards (`BatchState`).
        var versions: [(field: String, value: [UInt8]?)] = []
        versions.reserveCapacity(gathered.versions.count)
        for (field, read) in gathered.versions {
            if let token = batch.versions[field] {
                versions.append((field, token))
                batch.relyOn(field, read: read)
            } else {
                versions.append((field, read))
            }
        }
        let change = CoordinationChange(
            customer: customer,
            versions: versions,
            named: gathered.named.map { ($0.id, $0.active || batch.ids.contains($0.id)) },
            lock: lock.flatMap { $0.isEmpty ? nil : $0 },
            records: records, token: Array(ids.next().utf8),
            approvals: outcome.approvals, plans: outcome.plans, executeNow: request.executeNow, events: outcome.events)
        if !records.isEmpty {
            for rec in outcome.kept {
                for field in context.store.indexes(of: rec, customer: customer).versions where batch.versions[field] != change.token {
                    batch.versions[field] = change.token
                    batch.writers[field, default: []].append((index, change.token))
                }
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
    func executePlan(_ parsed: Envelope.Parsed, stored: [UInt8]?, queued: Bool, record: [UInt8]?,
                             into commit: inout Commit, now: Date) -> Result<[UInt8], Refusal> {
        let keys = context.keys
        guard let stored else { return .failure(Refusal(.notFound, "plan_id: no plan \(WireLimits.quoted(parsed.planID))")) }
        guard let plan = try? ExecutionPlan(stored: stored) else {
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
