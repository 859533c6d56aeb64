import Foundation

/// One coordination, with its working indexes. Nodes `0..<n` are the request's
/// recommendations in rank order (a request node's number is its rank), `n..<n+m` the active
/// ones (sorted by id), which rank after every request node.
///
/// The steps, in order: `gather` (ranking and names), dependencies (`DependencyGraph`), pair
/// conflicts (`ConflictDetector`), `resolve`, and `assemble`.
struct CoordinationRun {
    let configuration: EngineConfiguration
    let request: CoordinationRequest
    let recs: [Recommendation]
    let actives: [Recommendation]
    let now: Date
    let n: Int
    let m: Int

    // Per node, read once in input order (the recommendations lie in memory in that order;
    // reading them in rank order costs a cache miss per field), then laid out by node.
    var nodeID: [String] = []
    var nodePriority: [Int] = []
    var nodeSavings: [Double] = []
    var nodeRisk: [RiskLevel] = []
    /// Request nodes only.
    var expiresAt: [Date?] = []
    /// A request node's index in the request, and the node of each index.
    var inputIndex: [Int] = []
    var position: [Int] = []
    /// Whether any request node lists dependencies.
    var anyDependencies = false
    /// Interned resource names (a resource's number indexes it).
    var resourceNames: [String] = []

    /// Resources and actions by node, and who could conflict with whom.
    var detector = ConflictDetector()
    /// Dependencies between request nodes.
    var graph = DependencyGraph(nodes: 0)
    /// The dependency graph being built on another core (see `gather`).
    var pendingGraph: (DispatchGroup, Box<DependencyGraph?>)?
    /// Conflicts found: listed up to the cap, counted beyond.
    var ledger: ConflictLedger

    // Decisions.
    enum State: UInt8 { case undecided, kept, discarded }
    var state: [State] = []
    /// Why a node was discarded (meaningful where `state` is `.discarded`).
    var discards: [DiscardedInfo] = []
    struct DiscardedInfo {
        var reason: DiscardedRecommendation.Reason
        var entry = -1
        var active = -1
        var related = -1
        /// `related_id` is the missing dependency of `entry`.
        var relatedIsMissing = false
        /// `active_id` is the node's own id (an active recommendation has it).
        var activeIsOwnID = false
    }
    var executionOrder: [Int] = []

    init(configuration: EngineConfiguration, request: CoordinationRequest, active: [Recommendation], now: Date) {
        self.configuration = configuration
        self.request = request
        self.recs = request.recommendations
        self.actives = active.sorted { $0.id < $1.id }
        self.now = now
        self.n = recs.count
        self.m = actives.count
        self.ledger = ConflictLedger(maxListed: configuration.maxListedConflicts)
    }

    func id(_ node: Int) -> String { nodeID[node] }
    func actionName(_ node: Int) -> String { node < n ? recs[inputIndex[node]].action : actives[node - n].action }

    static let processors = ProcessInfo.processInfo.activeProcessorCount

    mutating func execute(ids: inout some IDGenerator) -> CoordinationOutcome {
        gather()
        takeDependencies()
        detector.enumerate(into: &ledger, budget: configuration.maxConflictWork)
        // The conflicts listed so far are described on another core while this one resolves.
        let describer = ConflictDescriber(n: n, nodeID: nodeID, nodeRisk: nodeRisk, detector: detector,
                                          resourceNames: resourceNames, recs: recs, actives: actives, inputIndex: inputIndex)
        let early = Box<[ConflictDescriber.Described?]>([])
        let describing = DispatchGroup()
        if ledger.entries.count + n >= 4096 && Self.processors > 1 {
            let entries = ledger.entries, resourceCount = resourceNames.count
            DispatchQueue.global(qos: .userInitiated).async(group: describing) {
                var scratch = ConflictDescriber.Scratch(resources: resourceCount)
                var text = TextBuffer()
                early.value = entries.map { describer.describe($0, scratch: &scratch, text: &text) }
            }
        }
        resolve()
        return assemble(ids: &ids, describer: describer, early: early, describing: describing)
    }
}
