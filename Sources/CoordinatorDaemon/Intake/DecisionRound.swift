import Coordination
import Foundation
import RedisClient

/// What one round read for a batch of decisions, in two round trips: Redis's clock, each
/// approval and each signed decision's replay mark; then the records of the recommendations
/// behind the approvals found (for the plan a final approval creates, the indexes a rejection
/// leaves).
struct DecisionRound {
    /// What one decision's approval turned out to be.
    enum Found {
        case approval(stored: [UInt8], Approval, record: RecommendationRecord?)
        case missing
        /// Stored in a form this daemon cannot read.
        case unreadable
    }

    private var approvals: [Int: Reads.Handle] = [:]
    private var seen: [Int: (handle: Reads.Handle, key: String)] = [:]
    private var records: [Int: Reads.Handle] = [:]
    private var decoded: [Int: (stored: [UInt8], approval: Approval)] = [:]
    private var first: ReadResults!
    private var second: ReadResults!

    var now: Date { first.now }

    static func read(_ items: [ApprovalHandler.Item], store: Store, on connection: RedisConnection) throws(RedisError) -> DecisionRound {
        var round = DecisionRound()
        var reads = Reads()
        for (index, item) in items.enumerated() {
            guard let message = item.message else { continue }
            round.approvals[index] = store.readApproval(message.approvalID, into: &reads)
            if let digest = item.signatureDigest {
                let key = store.keys.seenSignature(approval: message.approvalID, digest: digest)
                round.seen[index] = (store.readSeen(key, into: &reads), key)
            }
        }
        round.first = try store.read(reads, on: connection)
        var follow = Reads(after: round.first)
        for (index, handle) in round.approvals {
            guard let (bytes, approval) = round.first[handle].stored(Approval.self) else { continue }
            round.decoded[index] = (bytes, approval)
            round.records[index] = store.readActiveRecord(customer: approval.customerID, id: approval.recommendationID, into: &follow)
        }
        round.second = try store.read(follow, on: connection)
        return round
    }

    /// The replay mark a signed decision's commit writes (nil for an unsigned one).
    func seenKey(_ index: Int) -> String? { seen[index]?.key }

    /// Whether this signed decision's signature was already processed (PROTOCOL.md section 10).
    func replayed(_ index: Int) -> Bool {
        guard let mark = seen[index] else { return false }
        return first[mark.handle].bytes != nil
    }

    /// The approval a decision names, as read.
    func approval(_ index: Int) -> Found {
        if let (stored, approval) = decoded[index] {
            return .approval(stored: stored, approval, record: records[index].flatMap { second[$0].record })
        }
        guard let handle = approvals[index] else { return .missing }
        return first[handle].isNull ? .missing : .unreadable
    }
}
