/// The engine's settings: the approval policy, the table of contradictory actions, and the
/// bounds that keep a pathological request (thousands of recommendations on one resource)
/// from producing a response of millions of conflicts.
public struct EngineConfiguration: Sendable, Equatable {
    /// Conflicts listed in a response by default (the daemon's `conflicts_truncated` in
    /// docs/DESIGN.md): one figure for the engine and the daemon.
    public static let defaultMaxListedConflicts = 1_000

    /// Who approves what, and when approvals expire.
    public var policy: ApprovalPolicy
    /// Which actions contradict each other.
    public var actionConflicts: ActionConflicts = .seed
    /// Conflicts listed in a response besides those that decided a discard (which are always
    /// listed); beyond it `conflicts_truncated` is set and only counting goes on.
    public var maxListedConflicts = EngineConfiguration.defaultMaxListedConflicts
    /// Pair examinations after which counting stops too (`conflicts_detected` is then a lower
    /// bound). Resolution never depends on it: it needs no pair enumeration.
    public var maxConflictWork = 20_000_000

    /// The seed's contradictory actions, the given policy, and the default bounds.
    public init(policy: ApprovalPolicy = ApprovalPolicy()) { self.policy = policy }
}
