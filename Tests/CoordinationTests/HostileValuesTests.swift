import Foundation
import Testing
@testable import Coordination

/// Hostile values, the engine's side: actions are one spelling of lowercase snake case,
/// affected resources are identifiers of up to 512 bytes, a value quoted in an error is cut,
/// and distinct action names cost nothing (PROTOCOL.md 2.2, 2.5).
@Suite struct HostileValuesTests {
    func request(_ recs: [String]) -> [UInt8] {
        Array(#"{"customer_id": "cust-1", "recommendations": [\#(recs.joined(separator: ","))]}"#.utf8)
    }

    func rec(action: String? = nil, resources: [String] = [], type: String = "cost", id: String = "r0") -> String {
        var object: [String: Any] = ["id": id, "agent_id": "a", "type": type, "action": "scale_up", "risk_level": "low",
                                     "affected_resources": resources]
        if let action { object["action"] = action }
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    func failure(_ bytes: [UInt8]) -> ValidationError? {
        do {
            _ = try RequestDecoding.coordinationRequest(from: bytes)
            return nil
        } catch {
            return error
        }
    }

    /// Both decoders: the fast parser and `JSONDecoder` (which the fast one falls back to).
    func failures(_ bytes: [UInt8]) -> [ValidationError?] {
        var viaDecoder: ValidationError?
        do {
            var decoded = try RequestDecoding.decodeWithJSONDecoder(bytes)
            try RequestDecoding.validate(&decoded)
        } catch {
            viaDecoder = error
        }
        return [failure(bytes), viaDecoder]
    }

    @Test("attack 8: an action that is not lowercase snake case of 1-64 bytes is invalid_request, on both decoders")
    func actionSpelling() {
        let bad = ["DROP_DATABASE", "drop-database", "drop_database ", "drop_database\u{200B}", " drop_database",
                   "Drop_database", "_drop", "1drop", "drop.database", "drop database", "dröp", String(repeating: "a", count: 65)]
        for action in bad {
            for error in failures(request([rec(action: action)])) {
                #expect(error?.path == "recommendations[0].action", "\(action.debugDescription): \(String(describing: error))")
                #expect(error?.tooLarge == false)
            }
        }
        for action in ["drop_database", "a", "scale_up", "x9_", String(repeating: "a", count: 64)] {
            #expect(failures(request([rec(action: action)])).allSatisfy { $0 == nil }, "\(action)")
        }
    }

    @Test("attack 3: affected_resources are identifiers of up to 512 bytes")
    func resourceIdentifiers() {
        let arn = "arn:aws:ec2:eu-west-1:123456789012:instance/" + String(repeating: "i", count: 512 - 44)
        #expect(arn.utf8.count == 512)
        #expect(failures(request([rec(resources: ["i-1", arn])])).allSatisfy { $0 == nil })
        for bad in [arn + "x", "", "has space", "star*", "q\"", "é"] {
            for error in failures(request([rec(resources: ["i-1", bad])])) {
                #expect(error?.path == "recommendations[0].affected_resources[1]", "\(bad.prefix(20)): \(String(describing: error))")
                #expect(error?.tooLarge == false)
            }
        }
    }

    @Test("attack 3: at most --max-resources per recommendation and 10,000 per request, too_large")
    func resourceCounts() throws {
        func counts(_ perRec: [Int], max: Int = 1000) -> ValidationError? {
            var n = 0
            let recs = perRec.enumerated().map { index, count in
                Recommendation(id: "r\(index)", agentID: "a", action: "x", riskLevel: .low,
                               affectedResources: (0..<count).map { _ in n += 1; return "res-\(n)" })
            }
            do {
                try WireLimits.checkResourceCounts(CoordinationRequest(customerID: "c", recommendations: recs), perRecommendation: max)
                return nil
            } catch {
                return error
            }
        }
        #expect(counts([1000, 1000]) == nil)
        let one = try #require(counts([10, 1001]))
        #expect(one.tooLarge && one.path == "recommendations[1].affected_resources")
        #expect(counts([6], max: 5)?.tooLarge == true)
        #expect(counts(Array(repeating: 1000, count: 10)) == nil)
        let all = try #require(counts(Array(repeating: 1000, count: 10) + [1]))
        #expect(all.tooLarge && all.path == "recommendations")
    }

    @Test("attack 4: a value quoted in an error is cut at 128 bytes, so no message passes 1 KiB")
    func quotedValuesAreCut() {
        let huge = String(repeating: "A", count: 900_000)
        let cases = [
            request([rec(type: huge)]),
            Array(#"{"customer_id": "c", "recommendations": [{"id": "r", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "\#(huge)"}]}"#.utf8),
            Array(#"{"customer_id": "c", "recommendations": [{"id": "r", "agent_id": "a", "type": "cost", "action": "x", "risk_level": "low", "created_at": "\#(huge)"}]}"#.utf8),
            request([rec(action: huge)]),
            request([rec(action: "DROP" + huge)]),
        ]
        for bytes in cases {
            for error in failures(bytes) {
                #expect(error != nil)
                #expect((error?.description.utf8.count ?? 0) <= 1024, "\(error?.description.prefix(200) ?? "no error")")
            }
        }
        let quoted = WireLimits.quoted(huge)
        #expect(quoted == "\"" + String(repeating: "A", count: 128) + "…\"")
        // Cut on a character boundary: 43 euro signs are 129 bytes; 42 of them fit.
        #expect(WireLimits.quoted(String(repeating: "€", count: 43)) == "\"" + String(repeating: "€", count: 42) + "…\"")
        #expect(WireLimits.quoted("short") == "\"short\"")
        #expect(WireLimits.boundedMessage(huge).utf8.count <= 1024)
    }

    @Test("attack 1: distinct action names contradict nothing, and only the table's pairs do")
    func distinctActionsContradictNothing() {
        var recs: [Recommendation] = []
        for k in 0..<3000 {
            recs.append(Recommendation(id: "wide-\(k)", agentID: "a", customerID: "cust-1", action: "made_up_\(k)", riskLevel: .high))
        }
        recs.append(Recommendation(id: "up", agentID: "a", customerID: "cust-1", action: "scale_up", riskLevel: .low,
                                   affectedResources: ["i-1"], priority: 9))
        recs.append(Recommendation(id: "down", agentID: "a", customerID: "cust-1", action: "scale_down", riskLevel: .low,
                                   affectedResources: ["i-2"], priority: 1))
        recs.append(Recommendation(id: "term", agentID: "a", customerID: "cust-1", action: "terminate", riskLevel: .low, priority: 1))
        let response = coordinate(recs).response
        // scale_up on i-1 against scale_down on i-2: different things, no conflict; against the
        // customer-wide terminate: an action conflict. The 3,000 made-up actions conflict with nothing.
        #expect(response.conflicts.count == 1)
        #expect(response.conflicts.first.map { Set($0.recommendationIDs) } == ["up", "term"])
        #expect(response.recommendationsKept == recs.count - 1)
    }
}
