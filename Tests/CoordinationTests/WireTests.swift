import Foundation
import Testing
@testable import Coordination

@Suite struct TimestampTests {
    let reference = Date(timeIntervalSince1970: 1_795_515_330.123)

    @Test func format() {
        #expect(Timestamp.string(from: reference) == "2026-11-24T10:15:30.123Z")
        #expect(Timestamp.string(from: Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.string(from: Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(Timestamp.string(from: Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000Z")
    }

    @Test func parse() throws {
        let parsed = try #require(Timestamp.date(from: "2026-11-24T10:15:30.123Z"))
        #expect(abs(parsed.timeIntervalSince(reference)) < 0.0005)
        #expect(Timestamp.string(from: parsed) == "2026-11-24T10:15:30.123Z")
        #expect(Timestamp.date(from: "2026-11-24T12:15:30.123+02:00").map(Timestamp.string) == "2026-11-24T10:15:30.123Z")
        #expect(Timestamp.date(from: "2026-11-24T05:15:30.123-05:00").map(Timestamp.string) == "2026-11-24T10:15:30.123Z")
        #expect(Timestamp.date(from: "2026-11-24T10:15:30Z") == baseTime)
        #expect(Timestamp.date(from: "2026-11-24 10:15:30z") == baseTime)
        #expect(Timestamp.date(from: "2026-11-24T10:15:30.5Z") == baseTime.addingTimeInterval(0.5))
        for bad in ["", "garbage", "2026-11-24", "2026-11-24T10:15:30", "2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z",
                    "2026-11-24T10:15:30.Z", "2026-11-24T10:15:30Zjunk", "2026-11-24T10:15:30+0200"] {
            #expect(Timestamp.date(from: bad) == nil, "\(bad)")
        }
    }

    @Test func roundTripOfEveryMillisecond() {
        // Each millisecond of a second, at a date of today's magnitude, survives format and parse.
        for ms in 0..<1000 {
            let text = String(format: "2026-11-24T10:15:30.%03dZ", ms)
            let date = Timestamp.date(from: text)
            #expect(date.map(Timestamp.string) == text)
            if let date { #expect(Timestamp.string(from: date) == text) }
        }
    }
}

@Suite struct CodableRoundTripTests {
    func roundTrip<T: Codable & Equatable>(_ value: T) throws {
        let data = try WireJSON.encoder().encode(value)
        let back = try WireJSON.decoder().decode(T.self, from: data)
        #expect(back == value, "\(String(decoding: data, as: UTF8.self))")
    }

    let params: [String: JSONValue] = ["n": 1, "zero": 0, "x": 2.5, "s": "text", "b": true, "null": nil,
                                       "list": [1, "two", false], "nested": ["k": ["deep": 3]]]

    @Test func recommendation() throws {
        var r = rec("r1", action: "migrate_to_spot", resources: ["i-1", "i-2"], priority: 7, savings: 1234.5, confidence: 0.75,
                    risk: .high, deps: ["r0"], parameters: params, expiresAt: baseTime.addingTimeInterval(3600))
        r.createdAt = baseTime
        r.metadata = ["source": "test"]
        r.title = "Title \"quoted\" ü"
        r.status = .pendingApproval
        try roundTrip(r)
        r.status = nil
        r.metadata = [:]
        r.expiresAt = nil
        try roundTrip(r)
    }

    @Test func conflictAndDiscard() throws {
        try roundTrip(Conflict(id: "c1", type: .action, recommendationIDs: ["a", "b"], description: "d", severity: "high",
                               conflictingField: "action", detectedAt: baseTime, resolved: true, resolution: "Kept a",
                               resolvedAt: baseTime))
        try roundTrip(Conflict(id: "c2", type: .dependency, recommendationIDs: ["a"], description: "d", severity: "low",
                               conflictingField: "dependencies", detectedAt: baseTime))
        try roundTrip(DiscardedRecommendation(id: "a", reason: .conflictsWithActive, conflictID: "c1", activeID: "x", relatedID: "y"))
        try roundTrip(DiscardedRecommendation(id: "a", reason: .expired))
    }

    @Test func approval() throws {
        var a = Approval(id: "ap", recommendationID: "r", customerID: "c", riskLevel: .critical, requestedBy: "agent",
                         requestedAt: baseTime, expiresAt: baseTime.addingTimeInterval(60), requiredApprovals: 2)
        try roundTrip(a)
        a.approvers = [ApprovalVote(userID: "u1", at: baseTime), ApprovalVote(userID: "u2", at: baseTime.addingTimeInterval(1))]
        a.status = .approved
        a.approvedBy = "u2"
        a.approvedAt = baseTime
        a.notes = "fine"
        try roundTrip(a)
        a.status = .rejected
        a.rejectedBy = "u3"
        a.rejectedAt = baseTime
        a.rejectionReason = "no"
        try roundTrip(a)
    }

    @Test func plans() throws {
        var ids = SequentialIDGenerator(prefix: "p")
        var plan = PlanBuilder.plan(for: rec("r", action: "migrate_to_spot", parameters: params), now: baseTime, ids: &ids)
        try roundTrip(plan)
        plan.status = .rolledBack
        plan.startedAt = baseTime
        plan.completedAt = baseTime.addingTimeInterval(2)
        plan.rolledBackAt = baseTime.addingTimeInterval(2)
        plan.totalDurationMs = 2000
        plan.metadata = ["k": "v"]
        plan.rollbackReason = "worker_lost"
        plan.cancelReason = "x"
        plan.currentStep = 1
        plan.steps[0].status = .completed
        plan.steps[0].result = ["snapshot_id": "s"]
        plan.steps[0].rollbackData = ["snapshot_id": "s"]
        plan.steps[0].startedAt = baseTime
        plan.steps[0].completedAt = baseTime
        plan.steps[0].durationMs = 12
        plan.steps[0].rollbackError = "nope"
        plan.steps[1].error = "failed"
        try roundTrip(plan)
        try roundTrip(ExecutionStep(id: "s", action: "a", agentID: "g"))
    }

    @Test func requestAndResponse() throws {
        try roundTrip(CoordinationRequest(customerID: "cust-1", recommendations: [rec("a", customer: "cust-1")],
                                          autoApprove: false, executeNow: true))
        let outcome = coordinate([
            rec("a", action: "migrate_to_spot", resources: ["r1"], priority: 9, parameters: params),
            rec("b", action: "scale_down", resources: ["r1"], priority: 1),
            rec("c", resources: ["r2"], risk: .critical, deps: ["a"]),
            rec("d", deps: ["ghost"]),
        ])
        try roundTrip(outcome.response)
        #expect(outcome.response.executionPlans.count == 1)
        #expect(outcome.response.approvals.count == 1)
    }

    @Test func jsonValueShapes() throws {
        for value: JSONValue in [nil, true, false, 0, 1, -3.25, "s", [], [:], ["a": [1, nil]]] {
            try roundTrip(value)
        }
    }
}

@Suite struct FormattingTests {
    @Test func twoDecimalsMatchesFormatter() {
        var rng = SplitMix64(seed: 42)
        var values: [Double] = [0, 0.005, 0.015, 0.125, 0.375, 1.005, 2.675, 99.995, 1234.5, 1e14, 1e15, 1e20, -0.001, -12.345,
                                0.1, 0.07, 9.999, 10.0049999, .greatestFiniteMagnitude]
        for _ in 0..<20_000 {
            values.append(Double(Int.random(in: 0...100_000_000, using: &rng)) / 1000)
            values.append(Double.random(in: 0..<1e7, using: &rng))
        }
        for value in values {
            #expect(DecimalText.twoDecimals(value) == String(format: "%.2f", value), "\(value)")
        }
    }

    @Test func uuids() {
        var ids = UUIDGenerator()
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = ids.next()
            seen.insert(id)
            #expect(id.count == 36)
            #expect(id.allSatisfy { "0123456789abcdef-".contains($0) })
            #expect(UUID(uuidString: id) != nil)
            let parts = id.split(separator: "-")
            #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
            #expect(parts[2].first == "4")
            #expect("89ab".contains(parts[3].first!))
        }
        #expect(seen.count == 1000)
    }
}
