import Coordination
import Foundation
import Testing
@testable import CoordinatorDaemon

/// A stored recommendation record reads back the same through the direct parser as through
/// `JSONDecoder`, and anything the parser is not sure of falls back to the decoder.
@Suite("Stored recommendation records")
struct RecordDecodingTests {
    static let records: [RecommendationRecord] = [
        RecommendationRecord(
            recommendation: Recommendation(
                id: "r-1", agentID: "cost-agent-1", agentType: "cost", customerID: "cust-1", type: .performance,
                title: "Scale \"web\" down\n", description: "ünïcode ✓", action: "scale_down", riskLevel: .high,
                estimatedSavings: 1234.5, estimatedImpact: "low", affectedResources: ["i-1", "arn:aws:ec2:i-2"],
                parameters: ["replicas": .number(3), "nested": .object(["a": .array([.bool(true), .null, .string("x")])])],
                dependencies: ["r-0"], priority: 7, confidence: 0.25,
                createdAt: Date(timeIntervalSince1970: 1_796_620_554.339), expiresAt: Date(timeIntervalSince1970: 1_796_700_000),
                status: .pendingApproval, metadata: ["source": .string("test")]),
            executeNow: true, requestID: "req-1", approvalID: "ap-1", planID: nil),
        RecommendationRecord(
            recommendation: Recommendation(id: "r-2", agentID: "a", action: "migrate_to_spot"),
            executeNow: false, requestID: "req-2", approvalID: nil, planID: "plan-2"),
    ]

    @Test("the direct parser and JSONDecoder read every stored record the same")
    func sameAsDecoder() throws {
        for record in Self.records {
            let bytes = record.encoded()
            let fast = try #require(FastRecordParser.parse(bytes))
            let slow = try WireJSON.decoder().decode(RecommendationRecord.self, from: Data(bytes))
            let viaFast = RecommendationRecord(recommendation: fast.recommendation, executeNow: fast.executeNow,
                                               requestID: fast.requestID, approvalID: fast.approvalID, planID: fast.planID)
            #expect(viaFast.encoded() == slow.encoded())
            #expect(viaFast.encoded() == bytes)
        }
    }

    @Test("a record the parser is not sure of (an unknown member, a duplicate) is left to JSONDecoder")
    func fallsBack() throws {
        let extra = Array(#"{"recommendation":{"id":"r","agent_id":"a","type":"cost","action":"x","risk_level":"low"},"execute_now":false,"request_id":"q","extra":1}"#.utf8)
        #expect(FastRecordParser.parse(extra) == nil)
        #expect(try RecommendationRecord.decode(extra).requestID == "q")
        let twice = Array(#"{"recommendation":{"id":"r","agent_id":"a","type":"cost","action":"x","risk_level":"low"},"execute_now":false,"request_id":"q","request_id":"p"}"#.utf8)
        #expect(FastRecordParser.parse(twice) == nil)
    }
}
