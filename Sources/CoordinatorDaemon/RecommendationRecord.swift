import Coordination
import Foundation

/// What the daemon keeps of a recommendation between requests: the recommendation (its
/// `status` current) and what its request asked for.
struct RecommendationRecord: Codable, Sendable {
    var recommendation: Recommendation
    var executeNow: Bool
    var requestID: String
    var approvalID: String?
    var planID: String?

    enum CodingKeys: String, CodingKey {
        case recommendation
        case executeNow = "execute_now"
        case requestID = "request_id"
        case approvalID = "approval_id"
        case planID = "plan_id"
    }

    /// Statuses in which a recommendation takes part in later coordination.
    static let activeStatuses: Set<String> = ["pending_approval", "approved", "executing"]

    /// The stored form, written directly (this is on every request's path).
    func encoded() -> [UInt8] {
        var w = JSONWriter(capacity: 800)
        w.beginObject()
        w.key("recommendation"); w.raw(WireJSON.bytes(recommendation))
        w.key("execute_now"); w.bool(executeNow)
        w.key("request_id"); w.string(requestID)
        if let approvalID { w.key("approval_id"); w.string(approvalID) }
        if let planID { w.key("plan_id"); w.string(planID) }
        w.endObject()
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> RecommendationRecord {
        try WireJSON.decoder().decode(RecommendationRecord.self, from: Data(bytes))
    }
}

extension DaemonContext {
    /// Takes a recommendation out of its customer's active set for good (rejected, expired,
    /// its plan ended), keeps its last state readable for `--retention`, and wakes the plans
    /// that were waiting on it so they can start or be cancelled.
    func retire(customer: String, recommendationID: String, record: RecommendationRecord?,
                status: RecommendationStatus, into commit: inout Commit) {
        commit.write("HDEL", keys.active(customer: customer), recommendationID)
        if var record {
            record.recommendation.status = status
            commit.write("SET", keys.finished(customer: customer, recommendation: recommendationID),
                         record.encoded(), "EX", configuration.retention)
        }
        commit.wake(keys.waiters(customer: customer, recommendation: recommendationID), onto: keys.readyPlans)
    }
}
