/// The trust file's `risk_floor` (PROTOCOL.md section 10): the least risk an action is treated
/// as, whatever its recommendation declares. It applies to the decoded request before the engine
/// sees it, so approvals, expiry, replies and events all show the raised level; the declared one
/// is kept in the recommendation's `metadata.declared_risk_level`.
public struct RiskFloor: Sendable, Equatable {
    /// The least risk of each action named in the trust file.
    public var floors: [String: RiskLevel]

    /// A floor per action; none by default.
    public init(_ floors: [String: RiskLevel] = [:]) { self.floors = floors }

    /// Whether no action has a floor (nothing is raised).
    public var isEmpty: Bool { floors.isEmpty }

    /// The level `recommendation` is treated as: its own, or its action's floor when higher.
    public func level(of recommendation: Recommendation) -> RiskLevel {
        guard let floor = floors[recommendation.action], floor > recommendation.riskLevel else { return recommendation.riskLevel }
        return floor
    }

    /// Raises every recommendation declared below its action's floor to the floor, recording
    /// the declared level in `metadata.declared_risk_level`.
    public func apply(to request: inout CoordinationRequest) {
        guard !floors.isEmpty else { return }
        for index in request.recommendations.indices {
            let declared = request.recommendations[index].riskLevel
            let raised = level(of: request.recommendations[index])
            guard raised != declared else { continue }
            request.recommendations[index].riskLevel = raised
            request.recommendations[index].metadata["declared_risk_level"] = .string(declared.rawValue)
        }
    }
}
