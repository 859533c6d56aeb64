import Coordination
import Foundation
import Logging
import RedisClient

/// Handles decisions from `coord:approvals` (PROTOCOL.md section 3). The rules are the
/// engine's pure transition; this applies it with a commit guarded by the approval as read,
/// so of two daemons deciding the same approval at once exactly one wins and the other
/// computes again from what the winner wrote.
final class ApprovalHandler: BatchHandler {
    let queueName = "approvals"
    private let context: DaemonContext

    init(context: DaemonContext) { self.context = context }

    private struct Item {
        var raw: [UInt8]
        var message: ApprovalDecisionMessage?
        var requestID: String
        var replyTo: String?
        var failure: Refusal?
        /// The signer under `--trust` (section 10).
        var principal: Principal?
        /// The signature's `iat` and digest, when verified (section 10, v3).
        var issuedAt: Int?
        var signatureDigest: String?
    }

    func handle(_ messages: [[UInt8]], inflight: String, connection: RedisConnection) throws(RedisError) {
        let popped = DaemonMetrics.now()
        var pending = messages.map(parse)
        var round = 0
        while !pending.isEmpty {
            round += 1
            if round > 3 { Thread.sleep(forTimeInterval: Double.random(in: 0.001...0.01)) }
            pending = try attempt(pending, inflight: inflight, connection: connection, popped: popped)
        }
    }

    private func parse(_ signed: [UInt8]) -> Item {
        // Section 10: the signature is checked before anything is read for the decision.
        let admitted = context.trust.admit(signed)
        var item = parse(raw: signed, message: admitted.message)
        item.principal = admitted.principal
        item.issuedAt = admitted.issuedAt
        item.signatureDigest = admitted.signatureDigest
        if let refusal = admitted.refusal {
            // v3: nobody vouched for this message, its reply_to included: no reply, a dead letter.
            item.failure = refusal
            item.message = nil
            item.replyTo = nil
        } else if item.failure == nil,
                  let refusal = context.trust.refusal(replyTo: item.replyTo, by: admitted.principal, replyPrefix: context.configuration.replyPrefix) {
            // Outside the signer's reply namespace: refused into coord:dead, not answered there.
            item.failure = refusal
            item.message = nil
            item.replyTo = nil
        } else if let refusal = context.trust.refusal(decision: item.message, in: admitted.message, by: admitted.principal) {
            item.failure = refusal
            item.message = nil
        }
        return item
    }

    /// `raw` as taken from the queue (acknowledged and dead-lettered as is); `message` the
    /// decision in it (the JWS payload under `--trust`).
    private func parse(raw queued: [UInt8], message raw: [UInt8]) -> Item {
        var item = Item(raw: queued, requestID: RequestIDs.next())
        if raw.count > context.configuration.maxMessageBytes {
            item.failure = Refusal(.tooLarge, "message is \(raw.count) bytes, over --max-message-bytes (\(context.configuration.maxMessageBytes))")
        } else if String(validating: raw, as: UTF8.self) == nil {
            item.failure = Refusal(.invalidJSON, "message is not valid UTF-8")
        } else {
            let looksLikeJSON = raw.first(where: { !$0.isWhitespace }) == UInt8(ascii: "{")
            var object: [String: Any]?
            if looksLikeJSON {
                object = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any]
                // Even a decision that breaks the rules says where to answer.
                item.replyTo = (object?["reply_to"] as? String).flatMap { $0.isEmpty ? nil : $0 }
                if let id = object?["request_id"] as? String, !id.isEmpty, id.utf8.count <= Envelope.echoedRequestIDMax { item.requestID = id }
            }
            if looksLikeJSON && object == nil {
                item.failure = Refusal(.invalidJSON, "decision starts like JSON but is not a valid JSON object")
            } else {
                do {
                    let message = try ApprovalDecisionMessage.parse(raw)
                    item.message = message
                    item.replyTo = message.replyTo
                    if let id = message.requestID { item.requestID = id }
                } catch {
                    item.failure = Refusal(error.tooLarge ? .tooLarge : .invalidRequest, error.description)
                }
            }
        }
        // Section 2.1: a reply_to that breaks the rules gets no reply; refused into coord:dead.
        if let replyTo = item.replyTo, let problem = context.replyRules.problem(replyTo) {
            item.replyTo = nil
            item.message = nil
            item.failure = Refusal(.invalidRequest, "reply_to: \(problem)")
        }
        return item
    }

    private func attempt(_ items: [Item], inflight: String, connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        let keys = context.keys
        var reads: [RedisCommand] = [RedisClock.command]
        var approvalRead: [Int: Int] = [:]
        var seenRead: [Int: (at: Int, key: String)] = [:]
        for (index, item) in items.enumerated() {
            guard let message = item.message else { continue }
            approvalRead[index] = reads.count
            reads.append(RedisCommand("GET", keys.approval(message.approvalID)))
            if let digest = item.signatureDigest {
                let key = keys.seenSignature(approval: message.approvalID, digest: digest)
                seenRead[index] = (reads.count, key)
                reads.append(RedisCommand("GET", key))
            }
        }
        let approvalReplies = try connection.pipeline(reads)
        let now = RedisClock.date(from: approvalReplies[0])

        // The recommendations behind the approvals, for the plan a final approval creates.
        var approvals: [Int: (bytes: [UInt8], approval: Approval)] = [:]
        var recordReads: [RedisCommand] = []
        var recordRead: [Int: Int] = [:]
        for (index, at) in approvalRead {
            guard let bytes = approvalReplies[at].bytes,
                  let approval = try? WireJSON.decoder().decode(Approval.self, from: Data(bytes)) else { continue }
            approvals[index] = (bytes, approval)
            recordRead[index] = recordReads.count
            recordReads.append(RedisCommand("HGET", keys.active(customer: approval.customerID), approval.recommendationID))
        }
        let recordReplies = recordReads.isEmpty ? [] : try connection.pipeline(recordReads)

        var commits: [Commit] = []
        var refused: [Int: Refusal] = [:]  // for the metrics: how each refused decision ended
        for (index, item) in items.enumerated() {
            var commit = Commit(acknowledging: item.raw, in: inflight)
            if let failure = item.failure {
                refused[index] = finish(&commit, item, .failure(failure), now: now)
            } else if let refusal = context.trust.refusal(signedAt: item.issuedAt, by: item.principal, now: now,
                                                          maxAge: context.configuration.signatureMaxAge) {
                // Section 10, v3: outside its time window.
                refused[index] = finish(&commit, item, .failure(refusal), now: now)
            } else if let seen = seenRead[index], approvalReplies[seen.at].bytes != nil {
                // A replay within the window: answered as a duplicate, nothing changes.
                refused[index] = finish(&commit, item, .failure(Trust.replayRefusal()), now: now)
            } else if let (stored, approval) = approvals[index] {
                let record = recordReplies[recordRead[index]!].bytes.flatMap { try? RecommendationRecord.decode($0) }
                if let seen = seenRead[index] {
                    // Written with the decision's effects; a copy racing it (same batch, other
                    // daemon) finds its guard broken, reads again and is answered as a replay.
                    commit.require(seen.key, .absent)
                    commit.write("SET", seen.key, "1", "EX", Trust.seenTTL(maxAge: context.configuration.signatureMaxAge))
                }
                refused[index] = decide(item, approval: approval, stored: stored, record: record, into: &commit, now: now)
            } else if approvalReplies[approvalRead[index]!].isNull {
                refused[index] = finish(&commit, item, .failure(Refusal(.notFound, "approval_id: no approval \(WireLimits.quoted(item.message!.approvalID))")), now: now)
            } else {
                refused[index] = finish(&commit, item, .failure(Refusal(.internal, "approval \(item.message!.approvalID) is stored in a form this daemon cannot read")), now: now)
            }
            commits.append(commit)
        }

        let results = try Commit.apply(commits, on: connection, metrics: context.metrics)
        var stale: [Item] = []
        var undeliverable: [(raw: [UInt8], replyTo: String, error: String)] = []
        var refusal: RedisError?  // Redis refusing writes: the batch stays in flight (PROTOCOL.md 6)
        for (index, result) in results.enumerated() {
            switch result {
            case .applied, .appliedReplyUndeliverable:
                context.counters.add(processed: 1)
                context.metrics.decision(refused[index], since: popped)
                if case .appliedReplyUndeliverable(let error) = result {
                    undeliverable.append((items[index].raw, items[index].replyTo ?? "", error))
                }
            case .messageGone: break
            case .stale: stale.append(items[index])
            case .failed(let message) where Commit.refusal(in: message) != nil:
                refusal = Commit.refusal(in: message)
            case .failed(let message):
                // That message's failure alone: answered and dead-lettered, never retried.
                var commit = Commit(acknowledging: items[index].raw, in: inflight)
                finish(&commit, items[index], .failure(Refusal(.internal, "Redis refused the change: \(message)")), now: now)
                if case .failed = try Commit.apply([commit], on: connection, metrics: context.metrics).first {
                    _ = try Commit.apply([Commit(acknowledging: items[index].raw, in: inflight)], on: connection)
                }
            }
        }
        try context.deadLetterUndeliverable(undeliverable, queue: context.keys.approvals, now: now, connection: connection)
        if let refusal { throw refusal }
        return stale
    }

    /// Returns the failure the decision was answered with, if any.
    @discardableResult
    private func decide(_ item: Item, approval: Approval, stored: [UInt8], record: RecommendationRecord?,
                        into commit: inout Commit, now: Date) -> Refusal? {
        let keys = context.keys
        let policy = context.configuration.policy
        commit.require(keys.approval(approval.id), .equals(stored))
        let outcome = policy.decide(approval, item.message!.decision, now: now)
        switch outcome {
        case .success(var transition):
            transition.events = context.trust.marked(transition.events, by: item.principal)
            let planID = apply(transition, record: record, into: &commit, now: now)
            return finish(&commit, item, .success((transition.approval, planID)), now: now)
        case .failure(let refusal):
            switch refusal {
            case .expired(let transition):
                _ = apply(transition, record: record, into: &commit, now: now)
                return finish(&commit, item, .failure(Refusal(.expired, "approval \(approval.id) expired at \(Timestamp.string(from: approval.expiresAt))")), now: now)
            case .alreadyProcessed(let message):
                return finish(&commit, item, .failure(Refusal(.alreadyProcessed, message)), now: now)
            case .forbidden(let message):
                return finish(&commit, item, .failure(Refusal(.forbidden, message)), now: now)
            case .invalid(let message):
                return finish(&commit, item, .failure(Refusal(.invalidRequest, message)), now: now)
            }
        }
    }

    /// Writes an approval's new state and what follows from it; returns the plan a final
    /// approval created.
    @discardableResult
    private func apply(_ transition: ApprovalTransition, record: RecommendationRecord?, into commit: inout Commit, now: Date) -> String? {
        let store = context.store
        let approval = transition.approval
        store.decide(approval, into: &commit)
        context.events.emit(transition.events, at: now, into: &commit)
        switch transition.outcome {
        case .partiallyApproved:
            return nil
        case .approved:
            guard var record else {
                context.logger.error("approved recommendation is not active; no plan created",
                                     metadata: ["approval_id": "\(approval.id)", "recommendation_id": "\(approval.recommendationID)"])
                return nil
            }
            var ids = UUIDGenerator()
            let plan = PlanBuilder.plan(for: record.recommendation, now: now, ids: &ids)
            record.recommendation.status = .approved
            record.planID = plan.id
            store.updateActive(record, customer: approval.customerID, into: &commit)
            store.createPlan(plan, executeNow: record.executeNow, into: &commit)
            context.events.emit([PlanBuilder.createdEvent(plan, approvalID: approval.id)], at: now, into: &commit)
            return plan.id
        case .rejected, .expired:
            let status: RecommendationStatus = transition.outcome == .rejected ? .rejected : .expired
            store.retire(customer: approval.customerID, recommendationID: approval.recommendationID,
                         record: record, status: status, approvalID: approval.id, into: &commit)
            return nil
        }
    }

    /// Writes the decision's reply (and dead letter); returns its failure, if any.
    @discardableResult
    private func finish(_ commit: inout Commit, _ item: Item, _ outcome: Result<(Approval, String?), Refusal>, now: Date) -> Refusal? {
        switch outcome {
        case .success(let (approval, planID)):
            guard item.replyTo != nil else { return nil }
            var result = WireJSON.bytes(approval)
            if let planID, result.last == UInt8(ascii: "}") {
                result.removeLast()
                var tail = JSONWriter()
                tail.string(planID)
                result += Array(",\"plan_id\":".utf8) + tail.bytes + [UInt8(ascii: "}")]
            }
            context.reply(WireMessages.okReply(requestID: item.requestID, kind: "approval", result: result), to: item.replyTo, in: &commit)
            return nil
        case .failure(let failure):
            context.reply(WireMessages.errorReply(requestID: item.requestID, kind: "approval", failure: failure), to: item.replyTo, in: &commit)
            if failure.isDeadLetter {
                context.deadLetter(item.raw, queue: context.keys.approvals, failure: failure, now: now, in: &commit)
            }
            context.logger.notice("approval decision refused", metadata: [
                "request_id": "\(item.requestID)", "code": "\(failure.code.rawValue)", "error": "\(failure.message)",
            ])
            return failure
        }
    }
}

private extension UInt8 {
    var isWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}
