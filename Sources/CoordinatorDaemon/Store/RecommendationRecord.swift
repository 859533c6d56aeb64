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

    /// Read back directly when it is exactly what `encoded()` writes, else with `JSONDecoder`.
    static func decode(_ bytes: [UInt8]) throws -> RecommendationRecord {
        if let fast = FastRecordParser.parse(bytes) {
            return RecommendationRecord(recommendation: fast.recommendation, executeNow: fast.executeNow,
                                        requestID: fast.requestID, approvalID: fast.approvalID, planID: fast.planID)
        }
        return try WireJSON.decoder().decode(RecommendationRecord.self, from: Data(bytes))
    }
}
