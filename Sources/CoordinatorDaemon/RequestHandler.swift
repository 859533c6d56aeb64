import Coordination
import Foundation
import Logging
import RedisClient

/// Handles batches from `coord:requests`: one pipeline of reads, the engine, then one pipeline
/// of guarded commits (PROTOCOL.md section 2). A commit whose reads went stale (another daemon
/// changed the same customer meanwhile) is computed again from fresh reads.
final class RequestHandler: BatchHandler {
    let queueName = "requests"
    private let context: DaemonContext
    private let coordinator: Coordinator

    init(context: DaemonContext) {
        self.context = context
        self.coordinator = Coordinator(configuration: context.configuration.engine)
    }

    private struct Item {
        var raw: [UInt8]
        var parsed: Envelope.Parsed
        var request: CoordinationRequest?
        /// The signer under `--trust` (section 10).
        var principal: Principal?
    }

    /// A customer's active set as this batch sees it, including what earlier items of the
    /// same batch added (their commits are guarded by the version this batch expects).
    private struct CustomerState {
        var version: Int
        var active: [Recommendation]
    }

    func handle(_ messages: [[UInt8]], inflight: String, connection: RedisConnection) throws(RedisError) {
        let popped = DaemonMetrics.now()
        let config = context.configuration
        let trust = context.trust
        var pending = messages.map { raw -> Item in
            // Section 10: the signature is checked before anything is read for the message.
            let admitted = trust.admit(raw)
            var item = Item(raw: raw, parsed: Envelope.parse(admitted.message, maxBytes: config.maxMessageBytes, rules: context.replyRules),
                            principal: admitted.principal)
            if let refusal = admitted.refusal { item.parsed.failure = refusal }
            if item.parsed.failure == nil, item.parsed.kind == .coordinate {
                do throws(ValidationError) {
                    var request = try RequestDecoding.coordinationRequest(from: admitted.message)
                    if request.recommendations.count > config.maxRecommendations {
                        item.parsed.failure = Failure(.tooLarge, "recommendations: \(request.recommendations.count) items, over --max-recommendations (\(config.maxRecommendations))")
                    } else {
                        trust.riskFloor.apply(to: &request)
                        item.parsed.failure = trust.refusal(coordinate: request, by: item.principal)
                        item.request = request
                    }
                } catch {
                    item.parsed.failure = Failure(error.tooLarge ? .tooLarge : .invalidRequest, error.description)
                }
            } else if item.parsed.failure == nil, let kind = item.parsed.kind {
                item.parsed.failure = trust.refusal(kind, customer: item.parsed.customerID, by: item.principal)
            }
            return item
        }
        var round = 0
        while !pending.isEmpty {
            round += 1
            if round > 3 { Thread.sleep(forTimeInterval: Double.random(in: 0.001...0.01)) }
            pending = try attempt(pending, inflight: inflight, connection: connection, popped: popped)
        }
    }

    /// One read-compute-commit round; returns the items whose commit found its reads stale.
    private func attempt(_ items: [Item], inflight: String, connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        let keys = context.keys
        let now = Date()
        let nowMs = Int(now.timeIntervalSince1970 * 1000)

        // Reads, all in one round trip.
        var reads: [RedisCommand] = []
        var dedupeRead: [Int: Int] = [:]
        var objectRead: [Int: Int] = [:]
        var customerRead: [String: Int] = [:]
        for (index, item) in items.enumerated() where item.parsed.failure == nil {
            if item.parsed.requestIDGiven {
                dedupeRead[index] = reads.count
                reads.append(RedisCommand("GET", keys.dedupe(item.parsed.requestID)))
            }
            switch item.parsed.kind {
            case .coordinate:
                let customer = item.request!.customerID
                if customerRead[customer] == nil {
                    customerRead[customer] = reads.count
                    reads.append(RedisCommand("GET", keys.customerVersion(customer)))
                    reads.append(RedisCommand("HVALS", keys.active(customer: customer)))
                }
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
                    keys: [keys.pendingApprovals(customer: item.parsed.customerID)], args: [nowMs + 1, keys.approvalPrefix]))
            case nil:
                break
            }
        }
        let replies = reads.isEmpty ? [] : try connection.pipeline(reads)

        var customers: [String: CustomerState] = [:]
        for (customer, at) in customerRead {
            let version = Int(replies[at].string ?? "0") ?? 0
            let records = replies[at + 1].array ?? []
            var active: [Recommendation] = []
            active.reserveCapacity(records.count)
            for record in records {
                if let bytes = record.bytes, let decoded = try? RecommendationRecord.decode(bytes) {
                    active.append(decoded.recommendation)
                }
            }
            customers[customer] = CustomerState(version: version, active: active)
        }

        // Compute every item's commit, in order.
        var commits: [Commit] = []
        commits.reserveCapacity(items.count)
        var firstReplyOfRequest: [String: [UInt8]] = [:]
        var refused: [Int: Failure] = [:]  // for the metrics: how each refused item ended
        for (index, item) in items.enumerated() {
            var commit = Commit(acknowledging: item.raw, in: inflight)
            let parsed = item.parsed
            let kindName = parsed.kind?.rawValue ?? parsed.kindName
            if let failure = parsed.failure {
                fail(&commit, item, failure, now: now)
                commits.append(commit)
                continue
            }
            if parsed.requestIDGiven {
                if let stored = replies[dedupeRead[index]!].bytes {
                    replay(&commit, stored, to: parsed.replyTo)
                    commits.append(commit)
                    continue
                }
                if let first = firstReplyOfRequest[parsed.requestID] {
                    // The same request twice in one batch: answered like the first, once the
                    // first's commit has stored that answer.
                    commit.require(keys.dedupe(parsed.requestID), .equals(first))
                    replay(&commit, first, to: parsed.replyTo)
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
            let outcome: Result<[UInt8], Failure>
            switch parsed.kind! {
            case .coordinate:
                let customer = item.request!.customerID
                outcome = coordinate(item, state: &customers[customer]!, into: &commit, now: now)
            case .getPlan:
                outcome = replies[objectRead[index]!].bytes.map { .success($0) }
                    ?? .failure(Failure(.notFound, "plan_id: no plan \"\(parsed.planID)\""))
            case .executePlan:
                let at = objectRead[index]!
                outcome = executePlan(parsed, stored: replies[at].bytes, queued: replies[at + 1].integer == 1,
                                      into: &commit, now: now)
            case .getApproval:
                outcome = replies[objectRead[index]!].bytes.map { .success($0) }
                    ?? .failure(Failure(.notFound, "approval_id: no approval \"\(parsed.approvalID)\""))
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
                if parsed.requestIDGiven {
                    commit.require(keys.dedupe(parsed.requestID), .absent)
                    firstReplyOfRequest[parsed.requestID] = reply
                }
                context.reply(reply, to: parsed.replyTo, storingFor: parsed.requestIDGiven ? parsed.requestID : nil,
                              in: &commit)
            case .failure(let failure):
                fail(&commit, item, failure, now: now)
                refused[index] = failure
            }
            commits.append(commit)
        }

        let results = try Commit.apply(commits, on: connection)
        var stale: [Item] = []
        for (index, result) in results.enumerated() {
            switch result {
            case .applied:
                context.counters.add(processed: 1)
                context.metrics.request(kind: items[index].parsed.kindName, refused[index] ?? items[index].parsed.failure, since: popped)
                logDone(items[index])
            case .messageGone:
                context.logger.warning("message was taken over by another worker before its commit; left to it",
                                       metadata: ["request_id": "\(items[index].parsed.requestID)"])
            case .stale:
                stale.append(items[index])
            }
        }
        return stale
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

    private func fail(_ commit: inout Commit, _ item: Item, _ failure: Failure, now: Date) {
        let parsed = item.parsed
        let reply = WireMessages.errorReply(requestID: parsed.requestID, kind: parsed.kind?.rawValue ?? parsed.kindName, failure: failure)
        context.reply(reply, to: parsed.replyTo, in: &commit)
        if failure.isDeadLetter {
            context.deadLetter(item.raw, queue: context.keys.requests, failure: failure, now: now, in: &commit)
        }
    }

    private func replay(_ commit: inout Commit, _ reply: [UInt8], to replyTo: String?) {
        context.reply(reply, to: replyTo, in: &commit)
    }

    private func coordinate(_ item: Item, state: inout CustomerState, into commit: inout Commit, now: Date) -> Result<[UInt8], Failure> {
        let keys = context.keys
        let request = item.request!
        let customer = request.customerID
        var ids = UUIDGenerator()
        let outcome = coordinator.coordinate(request, active: state.active, now: now, ids: &ids)
        let result = WireJSON.bytes(outcome.response)
        commit.require(keys.customerVersion(customer), .counter(state.version))
        if !outcome.kept.isEmpty {
            let planOf = Dictionary(outcome.plans.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
            let approvalOf = Dictionary(outcome.approvals.map { ($0.recommendationID, $0.id) }, uniquingKeysWith: { a, _ in a })
            var hset: [any RedisArgument] = [keys.active(customer: customer)]
            for rec in outcome.kept {
                let record = RecommendationRecord(
                    recommendation: rec, executeNow: request.executeNow, requestID: item.parsed.requestID,
                    approvalID: approvalOf[rec.id], planID: planOf[rec.id])
                hset.append(rec.id)
                hset.append(record.encoded())
            }
            commit.write("HSET", arguments: hset)
            commit.write("INCR", keys.customerVersion(customer))
            state.version += 1
            state.active.append(contentsOf: outcome.kept)
        }
        for approval in outcome.approvals {
            let expiresMs = Int(approval.expiresAt.timeIntervalSince1970 * 1000)
            commit.write("SET", keys.approval(approval.id), WireJSON.bytes(approval))
            commit.write("ZADD", keys.pendingApprovals, expiresMs, approval.id)
            commit.write("ZADD", keys.pendingApprovals(customer: customer), expiresMs, approval.id)
        }
        for plan in outcome.plans {
            commit.write("SET", keys.plan(plan.id), WireJSON.bytes(plan))
            if request.executeNow {
                commit.write("SET", keys.planQueued(plan.id), "1")
                commit.write("LPUSH", keys.readyPlans, plan.id)
            }
        }
        context.events.emit(outcome.events, at: now, into: &commit)
        return .success(result)
    }

    private func executePlan(_ parsed: Envelope.Parsed, stored: [UInt8]?, queued: Bool, into commit: inout Commit, now: Date) -> Result<[UInt8], Failure> {
        let keys = context.keys
        guard let stored else { return .failure(Failure(.notFound, "plan_id: no plan \"\(parsed.planID)\"")) }
        guard let plan = try? WireJSON.decoder().decode(ExecutionPlan.self, from: Data(stored)) else {
            return .failure(Failure(.internal, "plan \(parsed.planID) is stored in a form this daemon cannot read"))
        }
        if queued || plan.status != .pending {
            let state = queued && plan.status == .pending ? "already started" : plan.status.rawValue
            return .failure(Failure(.conflictState, "plan \(plan.id) is \(state); only a pending plan that was never started can be executed"))
        }
        // The queued marker is the atomic "started" flag: a second execute_plan finds it.
        commit.require(keys.planQueued(plan.id), .absent)
        commit.require(keys.plan(plan.id), .equals(stored))
        commit.write("SET", keys.planQueued(plan.id), "1")
        commit.write("LPUSH", keys.readyPlans, plan.id)
        return .success(stored)
    }
}
