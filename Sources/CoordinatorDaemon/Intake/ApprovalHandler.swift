import Coordination
import Foundation
import Logging
import RedisClient

/// Handles decisions from `coord:approvals` (PROTOCOL.md section 3). The rules are the
/// engine's pure transition; this applies it with one call of `decide.lua`, guarded by the
/// approval as read, so of two daemons deciding the same approval at once exactly one wins
/// and the other decides again from what the winner wrote. A round: parse (`+Parse`), read
/// (`DecisionRound`), compute each item's commit (`+Commit`), apply, settle.
final class ApprovalHandler: BatchHandler {
    let queueName = "approvals"
    let context: DaemonContext

    init(context: DaemonContext) { self.context = context }

    struct Item {
        var raw: [UInt8]
        var message: ApprovalDecisionMessage?
        var requestID: String
        var replyTo: String?
        var failure: Refusal?
        /// The signer under `--trust` (section 10).
        var principal: Principal?
        /// The signature's `iat` and digest, when verified (PROTOCOL.md section 10).
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

    /// One round; returns the items whose commit found the approval changed meanwhile.
    private func attempt(_ items: [Item], inflight: String, connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
        let round = try DecisionRound.read(items, store: context.store, on: connection)
        var refused: [Int: Refusal] = [:]  // for the metrics: how each refused decision ended
        let commits = items.enumerated().map { index, item in
            commit(for: index, item, round: round, inflight: inflight, refused: &refused[index])
        }
        let results = try Commit.apply(commits, on: connection, metrics: context.metrics)
        return try settle(items, results, refused: refused, now: round.now, inflight: inflight, connection: connection, popped: popped)
    }

    /// Counts what applied, dead-letters undeliverable replies, answers a decision whose
    /// commit Redis refused (`internal`, that decision's failure alone), and returns the stale.
    private func settle(_ items: [Item], _ results: [Commit.Result], refused: [Int: Refusal], now: Date, inflight: String,
                        connection: RedisConnection, popped: UInt64) throws(RedisError) -> [Item] {
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
            case .stale, .journaled: stale.append(items[index])  // (only a coordinate meets a journal)
            case .failed(let message) where Commit.refusal(in: message) != nil:
                refusal = Commit.refusal(in: message)
            case .failed(let message):
                var commit = Commit(acknowledging: items[index].raw, in: inflight)
                refuse(&commit, items[index], Refusal(.internal, "Redis refused the change: \(message)"), now: now)
                if case .failed = try Commit.apply([commit], on: connection, metrics: context.metrics).first {
                    _ = try Commit.apply([Commit(acknowledging: items[index].raw, in: inflight)], on: connection)
                }
            }
        }
        try context.deadLetterUndeliverable(undeliverable, queue: context.keys.approvals, now: now, connection: connection)
        if let refusal { throw refusal }
        return stale
    }
}
