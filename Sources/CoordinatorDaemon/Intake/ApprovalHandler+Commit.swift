import Coordination
import Foundation
import RedisClient

extension ApprovalHandler {
    /// One decision's commit, from the round's reads: a refusal before its approval matters
    /// (malformed, out of its time window, a replay, an unknown approval) on the generic commit,
    /// or the decision itself in one call of `decide.lua`.
    func commit(for index: Int, _ item: Item, round: DecisionRound, inflight: String, refused: inout Refusal?) -> Commit {
        var commit = Commit(acknowledging: item.raw, in: inflight)
        let now = round.now
        if let failure = item.failure {
            refused = refuse(&commit, item, failure, now: now)
        } else if let refusal = context.trust.refusal(signedAt: item.issuedAt, by: item.principal, now: now,
                                                      maxAge: context.configuration.signatureMaxAge) {
            // PROTOCOL.md section 10: outside its time window.
            refused = refuse(&commit, item, refusal, now: now)
        } else if round.replayed(index) {
            // A replay within the window: answered as a duplicate, nothing changes.
            refused = refuse(&commit, item, Trust.replayRefusal(), now: now)
        } else {
            let approvalID = item.message!.approvalID
            switch round.approval(index) {
            case .approval(let stored, let approval, let record):
                return decide(item, approval: approval, stored: stored, record: record, seenKey: round.seenKey(index),
                              inflight: inflight, now: now, refused: &refused)
            case .missing:
                refused = refuse(&commit, item, Refusal(.notFound, "approval_id: no approval \(WireLimits.quoted(approvalID))"), now: now)
            case .unreadable:
                refused = refuse(&commit, item, Refusal(.internal, "approval \(approvalID) is stored in a form this daemon cannot read"), now: now)
            }
        }
        return commit
    }

    /// The decision as the policy rules it, with its reply, as one call of `decide.lua`.
    private func decide(_ item: Item, approval: Approval, stored: [UInt8], record: RecommendationRecord?, seenKey: String?,
                        inflight: String, now: Date, refused: inout Refusal?) -> Commit {
        var change = DecisionChange(read: approval, stored: stored)
        // Written with the decision's effects; a copy racing it (same batch, other daemon)
        // finds its guard broken, reads again and is answered as a replay.
        change.seen = seenKey.map { ($0, Trust.seenTTL(maxAge: context.configuration.signatureMaxAge)) }
        let outcome: Result<(Approval, String?), Refusal>
        switch context.configuration.policy.decide(approval, item.message!.decision, now: now) {
        case .success(var transition):
            transition.events = context.trust.marked(transition.events, by: item.principal)
            let planID = apply(transition, record: record, to: &change, now: now)
            outcome = .success((transition.approval, planID))
        case .failure(.expired(let transition)):
            apply(transition, record: record, to: &change, now: now)
            outcome = .failure(Refusal(.expired, "approval \(approval.id) expired at \(Timestamp.string(from: approval.expiresAt))"))
        case .failure(.alreadyProcessed(let message)):
            outcome = .failure(Refusal(.alreadyProcessed, message))
        case .failure(.forbidden(let message)):
            outcome = .failure(Refusal(.forbidden, message))
        case .failure(.invalid(let message)):
            outcome = .failure(Refusal(.invalidRequest, message))
        }
        if case .failure(let failure) = outcome {
            refused = failure
            logRefusal(item, failure)
            if failure.isDeadLetter {
                change.deadLetter = context.deadLetterEntry(item.raw, queue: context.keys.approvals, failure: failure, now: now)
            }
        }
        let reply = item.replyTo == nil ? [] : self.reply(item, outcome)
        return context.store.commit(change, acknowledging: item.raw, in: inflight, reply: reply, replyTo: item.replyTo, now: now)
    }

    /// What an approval's transition changes besides the approval, and its events; returns the
    /// plan a final approval created.
    @discardableResult
    private func apply(_ transition: ApprovalTransition, record: RecommendationRecord?, to change: inout DecisionChange,
                       now: Date) -> String? {
        let approval = transition.approval
        change.events = transition.events
        switch transition.outcome {
        case .partiallyApproved:
            change.effect = .vote(approval)
            return nil
        case .approved:
            guard var record else {
                context.logger.error("approved recommendation is not active; no plan created",
                                     metadata: ["approval_id": "\(approval.id)", "recommendation_id": "\(approval.recommendationID)"])
                change.effect = .approved(approval, record: nil, plan: nil)
                return nil
            }
            // A partition's ids on a cluster (`<k>.<uuid>`), so a plan routes by its id alone.
            var ids = context.newIDs()
            let plan = PlanBuilder.plan(for: record.recommendation, now: now, ids: &ids)
            record.recommendation.status = .approved
            record.planID = plan.id
            change.effect = .approved(approval, record: record, plan: plan)
            change.events.append(PlanBuilder.createdEvent(plan, approvalID: approval.id))
            return plan.id
        case .rejected, .expired:
            change.effect = .ended(approval, record: record, status: transition.outcome == .rejected ? .rejected : .expired)
            return nil
        }
    }

    /// The reply: the approval (with `plan_id` when one was created), or the refusal.
    private func reply(_ item: Item, _ outcome: Result<(Approval, String?), Refusal>) -> [UInt8] {
        switch outcome {
        case .success(let (approval, planID)):
            var result = WireJSON.bytes(approval)
            if let planID, result.last == UInt8(ascii: "}") {
                result.removeLast()
                var tail = JSONWriter()
                tail.string(planID)
                result += Array(",\"plan_id\":".utf8) + tail.bytes + [UInt8(ascii: "}")]
            }
            return WireMessages.okReply(requestID: item.requestID, kind: "approval", result: result)
        case .failure(let failure):
            return WireMessages.errorReply(requestID: item.requestID, kind: "approval", failure: failure)
        }
    }

    /// A refusal on the generic commit: its reply, and its dead letter when it is one.
    @discardableResult
    func refuse(_ commit: inout Commit, _ item: Item, _ failure: Refusal, now: Date) -> Refusal {
        context.reply(reply(item, .failure(failure)), to: item.replyTo, in: &commit)
        if failure.isDeadLetter {
            context.deadLetter(item.raw, queue: context.keys.approvals, failure: failure, now: now, in: &commit)
        }
        logRefusal(item, failure)
        return failure
    }

    private func logRefusal(_ item: Item, _ failure: Refusal) {
        context.logger.notice("approval decision refused", metadata: [
            "request_id": "\(item.requestID)", "code": "\(failure.code.rawValue)", "error": "\(failure.message)",
        ])
    }
}
