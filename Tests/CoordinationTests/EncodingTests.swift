import Foundation
import Testing
@testable import Coordination

@Suite struct WireEncodingTests {
    /// The JSON with members sorted at every level (`JSONEncoder`'s member order is unspecified).
    func canonical(_ data: Data) throws -> Data {
        let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])
    }

    func expectSame(_ response: CoordinationResponse, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let fast = WireJSON.encode(response)
        let reference = try WireJSON.encoder().encode(response)
        #expect(fast.count == reference.count, sourceLocation: sourceLocation)
        #expect(try canonical(fast) == canonical(reference), sourceLocation: sourceLocation)
        #expect(try WireJSON.decoder().decode(CoordinationResponse.self, from: fast) == response, sourceLocation: sourceLocation)
    }

    @Test func scenarios() throws {
        for name in ["scenario1-conflict", "scenario2-approval", "scenario3-rollback"] {
            let request = try RequestDecoding.coordinationRequest(from: try fixture(name))
            var ids = UUIDGenerator()
            try expectSame(Coordinator().coordinate(request, active: [], now: baseTime, ids: &ids).response)
        }
    }

    @Test func randomResponses() throws {
        var rng = SplitMix64(seed: 7)
        let actives = [rec("act-a", action: "scale_up", resources: ["r0"], status: .approved)]
        for trial in 0..<40 {
            let recs = OrderIndependenceTests().randomRequest(&rng, count: 40).map { r -> Recommendation in
                var r = r
                r.title = "T\(trial) \"q\" / \\ \n\t ü 日本 \u{1}"
                r.metadata = trial % 2 == 0 ? ["m": .number(Double(trial) / 7)] : [:]
                r.parameters = ["x": [1.5, -0.0, 1e300, .number(Double(1 << 60)), nil, true, ["k": "v"]]]
                r.createdAt = trial % 3 == 0 ? baseTime.addingTimeInterval(Double(trial) * 60) : nil
                r.estimatedSavings = Double(trial) * 1234.567
                return r
            }
            var configuration = EngineConfiguration()
            configuration.policy.mediumPolicy = trial % 2 == 0 ? .notify : .approve
            try expectSame(coordinate(recs, active: trial % 5 == 0 ? actives : [], autoApprove: trial % 7 != 0,
                                      configuration: configuration).response)
        }
    }

    @Test func largeResponseWrittenInParts() throws {
        var rng = SplitMix64(seed: 21)
        let recs = (0..<3000).map { index in
            rec("rec-\(index)", action: ["scale_up", "scale_down", "migrate_to_spot"].randomElement(using: &rng)!,
                resources: ["r\(Int.random(in: 0..<300, using: &rng))", "r\(Int.random(in: 0..<300, using: &rng))"],
                priority: Int.random(in: 1...10, using: &rng), savings: Double(index) / 3,
                risk: RiskLevel.allCases.randomElement(using: &rng)!)
        }
        let response = coordinate(recs).response
        #expect(response.conflicts.count > 2048)
        try expectSame(response)
    }

    @Test func everyOptionalField() throws {
        var response = coordinate([rec("a", action: "migrate_to_spot", risk: .low), rec("b", risk: .critical)]).response
        var plan = try #require(response.executionPlans.first)
        plan.startedAt = baseTime; plan.completedAt = baseTime; plan.rolledBackAt = baseTime
        plan.metadata = ["k": "v"]; plan.rollbackReason = "worker_lost"; plan.cancelReason = "c"
        plan.steps[0].result = ["r": 1]; plan.steps[0].error = "e"; plan.steps[0].startedAt = baseTime
        plan.steps[0].completedAt = baseTime; plan.steps[0].rollbackData = ["d": 2]; plan.steps[0].rollbackError = "re"
        response.executionPlans.append(plan)
        var approval = try #require(response.approvals.first)
        approval.approvedBy = "u"; approval.approvedAt = baseTime; approval.rejectedBy = "v"; approval.rejectedAt = baseTime
        approval.rejectionReason = "no"; approval.notes = "n"
        approval.approvers = [ApprovalVote(userID: "u", at: baseTime), ApprovalVote(userID: "w", at: baseTime)]
        response.approvals.append(approval)
        response.discarded.append(DiscardedRecommendation(id: "z", reason: .conflictsWithActive, conflictID: "c", activeID: "a", relatedID: "r"))
        response.conflicts.append(Conflict(id: "c", type: .timing, recommendationIDs: [], description: "", severity: "low",
                                           conflictingField: "f", detectedAt: baseTime))
        response.recommendations[0].expiresAt = baseTime
        response.recommendations[0].metadata = ["deep": ["a": [[:], []]]]
        try expectSame(response)
    }

    @Test func stringsAreSpelledLikeJSONEncoder() throws {
        var samples = ["", "plain", "quote \" backslash \\ slash / end", "\u{7F} ü 日本 🎉", "\r\n\t\u{8}\u{C}"]
        samples.append(String((0..<32).map { Character(UnicodeScalar(UInt8($0))) }))
        for text in samples {
            var out = JSONWriter()
            out.strings([text])
            #expect(Data(out.bytes) == (try JSONEncoder().encode([text])), "\(text.debugDescription)")
        }
    }

    @Test func numbersAreSpelledLikeJSONEncoder() throws {
        var rng = SplitMix64(seed: 99)
        var samples: [Double] = [0, -0.0, 1, -1, 0.5, 0.1, 1e15, 1e15 - 1, 1e16, Double(1 << 60), 1e300, .leastNonzeroMagnitude, 1e-7,
                                 0.0001, 2000, 1234.567, -98.76, .greatestFiniteMagnitude, Double(1 << 53) + 2]
        for _ in 0..<2000 {
            samples.append(Double(bitPattern: rng.next()))
            samples.append(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 100)
        }
        samples.removeAll { !$0.isFinite }
        for value in samples {
            var out = JSONWriter()
            out.array([value]) { $0.number($1) }
            #expect(Data(out.bytes) == (try JSONEncoder().encode([value])), "\(value)")
        }
    }
}
