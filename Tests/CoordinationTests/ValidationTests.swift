import Foundation
import Testing
@testable import Coordination

@Suite struct ValidationTests {
    static let good = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "scale_up", "risk_level": "low"}"#

    func request(_ recs: [String], extra: String = "") -> String {
        #"{"customer_id": "cust-1"\#(extra), "recommendations": [\#(recs.joined(separator: ","))]}"#
    }

    func error(_ json: String) -> String? {
        do {
            _ = try RequestDecoding.coordinationRequest(from: Array(json.utf8))
            return nil
        } catch {
            return error.description
        }
    }

    @Test func validRequestGetsDefaults() throws {
        let decoded = try RequestDecoding.coordinationRequest(from: Array(request([Self.good]).utf8))
        #expect(decoded.autoApprove)
        #expect(!decoded.executeNow)
        let r = try #require(decoded.recommendations.first)
        #expect(r.customerID == "cust-1")
        #expect(r.affectedResources.isEmpty && r.dependencies.isEmpty && r.parameters.isEmpty)
        #expect(r.priority == 0 && r.confidence == 0 && r.estimatedSavings == 0)
        #expect(r.status == nil && r.expiresAt == nil)
    }

    @Test func missingRequiredField() {
        let second = #"{"id": "r1", "type": "cost", "action": "scale_up", "risk_level": "low"}"#
        #expect(error(request([Self.good, second])) == "recommendations[1].agent_id: required")
        let nullAction = #"{"id": "r1", "agent_id": "a", "type": "cost", "action": null, "risk_level": "low"}"#
        #expect(error(request([Self.good, nullAction])) == "recommendations[1].action: required")
        #expect(error(#"{"recommendations": []}"#) == "customer_id: required")
        #expect(error(#"{"customer_id": "c"}"#) == "recommendations: required")
        #expect(error(#"{"customer_id": "", "recommendations": []}"#) == "customer_id: must not be empty")
        let emptyID = #"{"id": "", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low"}"#
        #expect(error(request([emptyID])) == "recommendations[0].id: must not be empty")
    }

    @Test func unknownEnumValues() {
        let risk = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "extreme"}"#
        #expect(error(request([risk])) == #"recommendations[0].risk_level: unknown value "extreme" (one of low, medium, high, critical)"#)
        let type = #"{"id": "r0", "agent_id": "a", "type": "magic", "action": "x", "risk_level": "low"}"#
        #expect(error(request([type]))?.hasPrefix(#"recommendations[0].type: unknown value "magic""#) == true)
    }

    @Test func numberRanges() {
        let conf = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "confidence": 1.5}"#
        #expect(error(request([conf])) == "recommendations[0].confidence: must be between 0 and 1")
        let negative = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "confidence": -0.1}"#
        #expect(error(request([negative])) == "recommendations[0].confidence: must be between 0 and 1")
        let edge = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "confidence": 1}"#
        #expect(error(request([edge])) == nil)
    }

    @Test func duplicateIDs() {
        #expect(error(request([Self.good, Self.good])) == #"recommendations[1].id: duplicate id "r0" (also recommendations[0])"#)
    }

    @Test func selfDependency() {
        let selfDep = #"{"id": "r1", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "dependencies": ["r0", "r1"]}"#
        #expect(error(request([Self.good, selfDep])) == "recommendations[1].dependencies[1]: a recommendation cannot depend on itself")
    }

    @Test func customerMismatch() {
        let other = #"{"id": "r1", "agent_id": "a", "customer_id": "cust-2", "type": "cost", "action": "x", "risk_level": "low"}"#
        #expect(error(request([other])) == #"recommendations[0].customer_id: "cust-2" differs from the request's customer_id "cust-1""#)
    }

    @Test func wrongTypes() {
        let priority = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "priority": "high"}"#
        #expect(error(request([priority])) == "recommendations[0].priority: expected an integer")
        let title = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "title": 5}"#
        #expect(error(request([title])) == "recommendations[0].title: expected a string")
        let resources = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "affected_resources": "i-1"}"#
        #expect(error(request([resources])) == "recommendations[0].affected_resources: expected an array")
        let element = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "affected_resources": ["i-1", 7]}"#
        #expect(error(request([element])) == "recommendations[0].affected_resources[1]: expected a string")
        let savings = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "estimated_savings": "lots"}"#
        #expect(error(request([savings])) == "recommendations[0].estimated_savings: expected a number")
        #expect(error(request([Self.good], extra: #", "auto_approve": "yes""#)) == "auto_approve: expected true or false")
        #expect(error(#"{"customer_id": "c", "recommendations": {}}"#) == "recommendations: expected an array")
        let id = #"{"id": 12, "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low"}"#
        #expect(error(request([id])) == "recommendations[0].id: expected a string")
        let date = #"{"id": "r0", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "created_at": "yesterday"}"#
        #expect(error(request([date])) == #"recommendations[0].created_at: not an RFC 3339 timestamp: "yesterday""#)
    }

    @Test func notJSON() {
        #expect(error("not json")?.hasPrefix("not valid JSON") == true)
        #expect(error("")?.hasPrefix("not valid JSON") == true)
    }
}
