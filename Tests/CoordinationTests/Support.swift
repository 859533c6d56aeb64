import Foundation
import Testing
@testable import Coordination

/// 2026-11-24T10:15:30.000Z
let baseTime = Date(timeIntervalSince1970: 1_795_515_330)

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"))
    return Array(try Data(contentsOf: url))
}

func rec(_ id: String, action: String = "noop", resources: [String] = [], priority: Int = 5, savings: Double = 100,
         confidence: Double = 0.5, risk: RiskLevel = .low, deps: [String] = [], agent: String = "agent-1",
         customer: String = "cust-1", parameters: [String: JSONValue] = [:], expiresAt: Date? = nil,
         status: RecommendationStatus? = nil) -> Recommendation {
    Recommendation(id: id, agentID: agent, customerID: customer, action: action, riskLevel: risk,
                   estimatedSavings: savings, affectedResources: resources, parameters: parameters,
                   dependencies: deps, priority: priority, confidence: confidence, expiresAt: expiresAt, status: status)
}

func coordinate(_ recs: [Recommendation], active: [Recommendation] = [], autoApprove: Bool = true,
                configuration: EngineConfiguration = EngineConfiguration(), now: Date = baseTime) -> CoordinationOutcome {
    var ids = SequentialIDGenerator(prefix: "gen")
    let request = CoordinationRequest(customerID: "cust-1", recommendations: recs, autoApprove: autoApprove)
    return Coordinator(configuration: configuration).coordinate(request, active: active, now: now, ids: &ids)
}

extension CoordinationResponse {
    var keptIDs: Set<String> { Set(recommendations.map(\.id)) }
    func discard(_ id: String) -> DiscardedRecommendation? { discarded.first { $0.id == id } }
    func conflict(_ id: String?) -> Conflict? { conflicts.first { $0.id == id } }
    func conflicts(of type: ConflictType) -> [Conflict] { conflicts.filter { $0.type == type } }
}
