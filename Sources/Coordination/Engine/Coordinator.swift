import Foundation

/// The coordination engine (PROTOCOL.md section 2.2): conflicts, resolution, dependency order,
/// approvals and plans for one request, given the customer's active recommendations.
///
/// Cost grows with the recommendations plus the conflicts found: recommendations are indexed
/// by resource and by action instead of comparing every pair, and resolution checks each
/// candidate only against what is already kept (one holder per resource), so thousands of
/// recommendations on one resource cost linear time to resolve. Ranking, indexes and listing
/// all follow the rank order, so nothing depends on the order of the input.
///
/// The work is one `CoordinationRun`, in steps each in a file of its own: ranking
/// (`CoordinationRun+Ranking`), interning names and indexing (`CoordinationRun+Names`), the
/// `DependencyGraph`, the `ConflictDetector`, resolution (`CoordinationRun+Resolution`) and the
/// output (`CoordinationRun+Assembly`).
public struct Coordinator: Sendable {
    /// The policy and bounds this engine applies.
    public let configuration: EngineConfiguration

    /// An engine with the given policy and bounds.
    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        self.configuration = configuration
    }

    /// Decides one `coordinate` request.
    ///
    /// - Parameters:
    ///   - request: the request, already validated (`RequestDecoding`).
    ///   - active: the customer's recommendations still active from earlier requests (pending
    ///     approval, approved, executing); a new one that conflicts with one of them, or reuses
    ///     its id, is discarded with `conflicts_with_active`.
    ///   - now: the time of the decision: expiry is checked against it, and it stamps
    ///     conflicts, approvals and plans.
    ///   - ids: where new identifiers come from (conflicts, approvals, plans and steps, then the
    ///     response), drawn in a fixed order so that a `SequentialIDGenerator` gives
    ///     reproducible output.
    /// - Returns: the response, the kept recommendations, approvals, plans and events. The
    ///   outcome does not depend on the order of `request.recommendations`.
    public func coordinate(_ request: CoordinationRequest, active: [Recommendation] = [], now: Date,
                           ids: inout some IDGenerator) -> CoordinationOutcome {
        var run = CoordinationRun(configuration: configuration, request: request, active: active, now: now)
        return run.execute(ids: &ids)
    }
}
