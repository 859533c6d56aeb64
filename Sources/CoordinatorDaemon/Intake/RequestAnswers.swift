import Coordination
import Foundation
import RedisClient

extension RequestHandler {
    /// A message whose commit failed in Redis (a key of the wrong type, say) is that
    /// message's failure alone: it is answered and dead-lettered as `internal`, and when even
    /// that cannot be written it is acknowledged and logged, so it never comes back.
    func settleFailed(_ failed: [(Item, String)], inflight: String, now: Date,
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
    /// of what it acts on or reads (PROTOCOL.md section 10); nil for unsigned messages.
    func seenKey(_ item: Item) -> String? {
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
    static let seenMark: [UInt8] = [UInt8(ascii: "1")]

    /// Marks a signature as processed in the commit of the message's effects, guarded so that
    /// only one copy's commit can write it.
    func remember(_ key: String, in commit: inout Commit, round: inout RequestRound) {
        commit.require(key, .absent)
        commit.write("SET", key, Self.seenMark, "EX", Trust.seenTTL(maxAge: context.configuration.signatureMaxAge))
        round.firstOfSignature[key] = Self.seenMark
    }

    /// A replayed signed message: a `coordinate` is answered with the first copy's reply (as
    /// stored under the seen key), any other kind `already_processed`.
    func replayed(_ commit: inout Commit, _ item: Item, _ stored: [UInt8], now: Date, refused: inout Refusal?) {
        if item.parsed.kind == .coordinate {
            replay(&commit, item, stored, now: now)
        } else {
            let refusal = Trust.replayRefusal()
            fail(&commit, item, refusal, now: now)
            refused = refusal
        }
    }

    func logDone(_ item: Item) {
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

    func fail(_ commit: inout Commit, _ item: Item, _ failure: Refusal, now: Date) {
        let parsed = item.parsed
        let reply = WireMessages.errorReply(requestID: parsed.requestID, kind: parsed.kind?.rawValue ?? parsed.kindName, failure: failure)
        context.reply(reply, to: parsed.replyTo, in: &commit)
        if failure.isDeadLetter {
            context.deadLetter(item.raw, queue: context.keys.requests, failure: failure, now: now, in: &commit)
        }
    }

    /// A repeated `coordinate` (PROTOCOL.md 2.3): the first one's reply again, but only to the
    /// `reply_to` that made it; anyone else gets `conflict_state`.
    func replay(_ commit: inout Commit, _ item: Item, _ stored: [UInt8], now: Date) {
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
}
