import Foundation

public struct EngineConfiguration: Sendable, Equatable {
    public var policy: ApprovalPolicy
    public var actionConflicts: ActionConflicts = .seed
    /// Conflicts listed in a response besides those that decided a discard (which are always
    /// listed); beyond it `conflicts_truncated` is set and only counting goes on.
    public var maxListedConflicts = 10_000
    /// Pair examinations after which counting stops too (`conflicts_detected` is then a lower
    /// bound). Resolution never depends on it: it needs no pair enumeration.
    public var maxConflictWork = 20_000_000

    public init(policy: ApprovalPolicy = ApprovalPolicy()) { self.policy = policy }
}

/// What one `coordinate` request decided.
public struct CoordinationOutcome: Sendable {
    public var response: CoordinationResponse
    /// The kept recommendations with their new status, in execution order.
    public var kept: [Recommendation]
    public var approvals: [Approval]
    public var plans: [ExecutionPlan]
    /// In the order they happened: conflicts resolved, recommendations discarded, approvals
    /// requested (or approved), plans created, and `coordination.completed` last.
    public var events: [DomainEvent]
}

/// The coordination engine (PROTOCOL.md section 2.2): conflicts, resolution, dependency order,
/// approvals and plans for one request, given the customer's active recommendations.
///
/// Cost grows with the recommendations plus the conflicts found: recommendations are indexed
/// by resource and by action instead of comparing every pair, and resolution checks each
/// candidate only against what is already kept (one holder per resource), so thousands of
/// recommendations on one resource cost linear time to resolve. Ranking, indexes and listing
/// all follow the rank order, so nothing depends on the order of the input.
public struct Coordinator: Sendable {
    public let configuration: EngineConfiguration

    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        self.configuration = configuration
    }

    public func coordinate(_ request: CoordinationRequest, active: [Recommendation] = [], now: Date,
                           ids: inout some IDGenerator) -> CoordinationOutcome {
        var run = Run(configuration: configuration, request: request, active: active, now: now)
        return run.execute(ids: &ids)
    }
}

/// One coordination, with its working indexes. Nodes `0..<n` are the request's
/// recommendations, `n..<n+m` the active ones (sorted by id).
private struct Run {
    let configuration: EngineConfiguration
    let request: CoordinationRequest
    let recs: [Recommendation]
    let actives: [Recommendation]
    let now: Date
    let n: Int
    let m: Int

    // Per node, read once in input order (the recommendations lie in memory in that order;
    // reading them in rank order costs a cache miss per field).
    var nodeID: [String] = []
    var nodePriority: [Int] = []
    var nodeSavings: [Double] = []
    var nodeRisk: [RiskLevel] = []
    /// Affected resources listed by all nodes (with repeats).
    var affectedCount = 0
    /// Request nodes only.
    var expiresAt: [Date?] = []
    /// The node's resources are `resourceFlat[resourceStart[node]..<resourceStart[node + 1]]`.
    var resourceFlat: [Int] = []
    var resourceStart: [Int] = []
    var action: [Int] = []
    var rank: [Int] = []
    /// Request nodes, best first (since nodes are numbered by rank: 0..<n).
    var order: [Int] = []
    /// A request node's index in the request, and the node of each index.
    var inputIndex: [Int] = []
    var position: [Int] = []
    // Per interned resource / action.
    var resourceNames: [String] = []
    /// A resource's holders, in rank order: `holderFlat[holderStart[r]..<holderStart[r + 1]]`.
    var holderFlat: [Int] = []
    var holderStart: [Int] = []
    var actionNames: [String] = []
    var contra: [[Int]] = []
    var byAction: [[Int]] = []
    var resourcelessByAction: [[Int]] = []

    // Conflicts.
    struct Entry {
        var type: ConflictType
        var a: Int
        var b: Int
        /// A dependency cycle's members (rank order), or nil.
        var members: [Int]?
        /// A missing dependency's id, or nil.
        var missing: String?
    }
    var listed: [Entry] = []
    var listedIndex: [Int: Int] = [:]
    var detected = 0
    var truncated = false
    /// Request nodes of rank below this had their row enumerated (all of them unless the work
    /// budget ran out).
    var countedRanks = Int.max

    // Decisions.
    enum State: UInt8 { case undecided, kept, discarded }
    var state: [State] = []
    var discards: [DiscardedInfo?] = []
    struct DiscardedInfo {
        var reason: DiscardedRecommendation.Reason
        var entry: Int?
        var active: Int?
        var related: Int?
        var relatedID: String?
        var activeID: String?
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
    }

    func id(_ node: Int) -> String { nodeID[node] }
    func resources(_ node: Int) -> ArraySlice<Int> { resourceFlat[resourceStart[node]..<resourceStart[node + 1]] }
    func hasResources(_ node: Int) -> Bool { resourceStart[node] != resourceStart[node + 1] }
    func holders(_ resource: Int) -> ArraySlice<Int> { holderFlat[holderStart[resource]..<holderStart[resource + 1]] }
    func rec(_ node: Int) -> Recommendation { node < n ? recs[inputIndex[node]] : actives[node - n] }

    mutating func execute(ids: inout some IDGenerator) -> CoordinationOutcome {
        rankRequest()
        buildIndexes()
        let dependencies = buildDependencies()
        enumerateConflicts()
        resolve(dependencies)
        return assemble(ids: &ids)
    }

    // MARK: Ranking and indexes

    /// Priority, savings, confidence (higher first), then lower risk, then id. Request nodes are
    /// numbered by rank from here on (`inputIndex` maps back), so the passes in rank order
    /// read their per-node arrays in sequence.
    mutating func rankRequest() {
        var ids: [String] = [], priority: [Int] = [], savings: [Double] = [], confidence: [Double] = []
        var risk: [RiskLevel] = [], expiry: [Date?] = []
        ids.reserveCapacity(n); priority.reserveCapacity(n); savings.reserveCapacity(n)
        confidence.reserveCapacity(n); risk.reserveCapacity(n); expiry.reserveCapacity(n)
        for index in recs.indices {
            ids.append(recs[index].id)
            priority.append(recs[index].priority)
            savings.append(recs[index].estimatedSavings)
            confidence.append(recs[index].confidence)
            risk.append(recs[index].riskLevel)
            expiry.append(recs[index].expiresAt)
            affectedCount += recs[index].affectedResources.count
        }
        for index in actives.indices { affectedCount += actives[index].affectedResources.count }
        inputIndex = Array(0..<n)
        inputIndex.sort { a, b in
            if priority[a] != priority[b] { return priority[a] > priority[b] }
            if savings[a] != savings[b] { return savings[a] > savings[b] }
            if confidence[a] != confidence[b] { return confidence[a] > confidence[b] }
            if risk[a] != risk[b] { return risk[a] < risk[b] }
            return ids[a] < ids[b]
        }
        position = [Int](repeating: 0, count: n)
        for (node, index) in inputIndex.enumerated() { position[index] = node }
        nodeID = inputIndex.map { ids[$0] } + actives.map(\.id)
        nodePriority = inputIndex.map { priority[$0] } + actives.map(\.priority)
        nodeSavings = inputIndex.map { savings[$0] } + actives.map(\.estimatedSavings)
        nodeRisk = inputIndex.map { risk[$0] } + actives.map(\.riskLevel)
        expiresAt = inputIndex.map { expiry[$0] }
        order = Array(0..<n)
        rank = Array(0..<(n + m))
    }

    static func intern(_ slot: inout Int, next: Int) -> Int {
        if slot < 0 { slot = next }
        return slot
    }

    mutating func buildIndexes() {
        let total = n + m
        var resourceIndex: [String: Int] = [:]
        var actionIndex: [String: Int] = [:]
        resourceIndex.reserveCapacity(affectedCount)
        func internAction(_ name: String) -> Int {
            if let known = actionIndex[name] { return known }
            let id = actionNames.count
            actionIndex[name] = id
            actionNames.append(name)
            return id
        }
        action = [Int](repeating: 0, count: total)
        // Read in input order (where the recommendations lie in memory), then laid out by node.
        var inputStart = [Int](repeating: 0, count: total + 1)
        var inputFlat: [Int] = []
        inputFlat.reserveCapacity(total * 3)
        var seen: [Int] = []
        var holderCount: [Int] = []
        for index in 0..<total {
            let (actionName, affected) = index < n ? (recs[index].action, recs[index].affectedResources)
                                                   : (actives[index - n].action, actives[index - n].affectedResources)
            action[index < n ? position[index] : index] = internAction(actionName)
            inputStart[index] = inputFlat.count
            for name in affected {
                // One hash lookup whether the name is new or not.
                let id = Self.intern(&resourceIndex[name, default: -1], next: resourceNames.count)
                if id == resourceNames.count {
                    resourceNames.append(name)
                    seen.append(-1)
                    holderCount.append(0)
                }
                if seen[id] == index { continue }  // listed twice by the same recommendation
                seen[id] = index
                inputFlat.append(id)
                holderCount[id] += 1
            }
        }
        inputStart[total] = inputFlat.count
        resourceStart = [Int](repeating: 0, count: total + 1)
        resourceFlat.reserveCapacity(inputFlat.count)
        for node in 0..<total {
            let index = node < n ? inputIndex[node] : node
            resourceStart[node] = resourceFlat.count
            resourceFlat.append(contentsOf: inputFlat[inputStart[index]..<inputStart[index + 1]])
        }
        resourceStart[total] = resourceFlat.count
        // Request nodes in rank order, then actives by id: every holder list comes out sorted.
        holderStart = [Int](repeating: 0, count: resourceNames.count + 1)
        for r in resourceNames.indices { holderStart[r + 1] = holderStart[r] + holderCount[r] }
        var cursor = holderStart
        holderFlat = [Int](repeating: 0, count: resourceFlat.count)
        for node in order + Array(n..<total) {
            for k in resourceStart[node]..<resourceStart[node + 1] {
                let r = resourceFlat[k]
                holderFlat[cursor[r]] = node
                cursor[r] += 1
            }
        }
        contra = [[Int]](repeating: [], count: actionNames.count)
        for (name, others) in configuration.actionConflicts.contradicting {
            guard let a = actionIndex[name] else { continue }
            contra[a] = others.compactMap { actionIndex[$0] }
        }
        byAction = [[Int]](repeating: [], count: actionNames.count)
        resourcelessByAction = [[Int]](repeating: [], count: actionNames.count)
        for node in order + Array(n..<total) where !contra[action[node]].isEmpty {
            byAction[action[node]].append(node)
            if !hasResources(node) { resourcelessByAction[action[node]].append(node) }
        }
    }

    // MARK: Conflict detection

    func key(_ type: ConflictType, _ a: Int, _ b: Int) -> Int {
        let (x, y) = a < b ? (a, b) : (b, a)
        let t = type == .resource ? 0 : 1
        return (t << 62) | (x << 31) | y
    }

    /// Records a pair conflict `a` (a request node) with `b`, where `a` ranks better or `b` is active.
    mutating func record(_ type: ConflictType, _ a: Int, _ b: Int) {
        detected += 1
        if listed.count < configuration.maxListedConflicts {
            listedIndex[key(type, a, b)] = listed.count
            listed.append(Entry(type: type, a: a, b: b))
        } else {
            truncated = true
        }
    }

    /// Counts every conflicting pair once and lists them up to the cap, in rank order.
    mutating func enumerateConflicts() {
        var stamp = [Int](repeating: -1, count: n + m)
        var work = 0
        let budget = configuration.maxConflictWork
        for i in order {
            for r in resources(i) {
                for j in holders(r) {
                    work += 1
                    if j == i || (j < n && rank[j] <= rank[i]) || stamp[j] == i { continue }
                    stamp[j] = i
                    record(.resource, i, j)
                    if contradicts(i, j) { record(.action, i, j) }
                }
            }
            for b in contra[action[i]] {
                if !hasResources(i) {
                    // Customer-wide: contradicts every recommendation with action b.
                    for j in byAction[b] {
                        work += 1
                        if j < n && !hasResources(j) && rank[j] < rank[i] { continue }
                        record(.action, i, j)
                    }
                } else {
                    // Customer-wide request nodes count this pair from their side.
                    for j in resourcelessByAction[b] where j >= n {
                        work += 1
                        record(.action, i, j)
                    }
                }
            }
            if work > budget {
                truncated = true
                countedRanks = rank[i] + 1
                return
            }
        }
    }

    func contradicts(_ i: Int, _ j: Int) -> Bool {
        let list = contra[action[i]]
        return !list.isEmpty && list.contains(action[j])
    }

    // MARK: Dependencies

    struct Dependencies {
        var on: [[Int]]
        var dependents: [[Int]]
    }

    mutating func buildDependencies() -> Dependencies {
        var deps = Dependencies(on: [[Int]](repeating: [], count: n), dependents: [[Int]](repeating: [], count: n))
        state = [State](repeating: .undecided, count: n)
        discards = [DiscardedInfo?](repeating: nil, count: n)
        guard recs.contains(where: { !$0.dependencies.isEmpty }) else { return deps }
        var index: [String: Int] = [:]
        index.reserveCapacity(n)
        for node in 0..<n { index[nodeID[node]] = node }
        let activeIDs = Set(actives.map(\.id))
        for i in order {
            var seen = Set<Int>()
            for dependency in recs[inputIndex[i]].dependencies {
                if let j = index[dependency] {
                    if seen.insert(j).inserted {
                        deps.on[i].append(j)
                        deps.dependents[j].append(i)
                    }
                } else if !activeIDs.contains(dependency) {
                    let entry = listed.count
                    listed.append(Entry(type: .dependency, a: i, b: -1, members: nil, missing: dependency))
                    detected += 1
                    if state[i] == .undecided {
                        state[i] = .discarded
                        discards[i] = DiscardedInfo(reason: .dependencyMissing, entry: entry, relatedID: dependency)
                    }
                }
            }
        }
        for cycle in cycles(deps.on) {
            let members = cycle.sorted { rank[$0] < rank[$1] }
            let entry = listed.count
            listed.append(Entry(type: .dependency, a: members[0], b: -1, members: members))
            detected += 1
            for node in members {
                state[node] = .discarded
                discards[node] = DiscardedInfo(reason: .dependencyCycle, entry: entry)
            }
        }
        return deps
    }

    /// Strongly connected components with more than one member (Tarjan, iterative), in rank order.
    func cycles(_ edges: [[Int]]) -> [[Int]] {
        var index = [Int](repeating: -1, count: n)
        var low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        var counter = 0
        var result: [[Int]] = []
        for root in order where index[root] < 0 && !edges[root].isEmpty {
            var work: [(node: Int, next: Int)] = [(root, 0)]
            index[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let (node, next) = work.last {
                if next < edges[node].count {
                    work[work.count - 1].next += 1
                    let w = edges[node][next]
                    if index[w] < 0 {
                        index[w] = counter; low[w] = counter; counter += 1
                        stack.append(w); onStack[w] = true
                        work.append((w, 0))
                    } else if onStack[w] {
                        low[node] = min(low[node], index[w])
                    }
                } else {
                    work.removeLast()
                    if let parent = work.last?.node { low[parent] = min(low[parent], low[node]) }
                    if low[node] == index[node] {
                        var component: [Int] = []
                        while let w = stack.popLast() {
                            onStack[w] = false
                            component.append(w)
                            if w == node { break }
                        }
                        if component.count > 1 { result.append(component) }
                    }
                }
            }
        }
        return result
    }

    // MARK: Resolution

    /// Who holds what: kept recommendations (or active ones), one per resource.
    struct Holdings {
        var resource: [Int]
        var byAction: [Int]
        var resourcelessByAction: [Int]

        init(resources: Int, actions: Int) {
            resource = [Int](repeating: -1, count: resources)
            byAction = [Int](repeating: -1, count: actions)
            resourcelessByAction = [Int](repeating: -1, count: actions)
        }
    }

    func claim(_ node: Int, in holdings: inout Holdings) {
        for r in resources(node) where holdings.resource[r] < 0 { holdings.resource[r] = node }
        let a = action[node]
        if holdings.byAction[a] < 0 { holdings.byAction[a] = node }
        if !hasResources(node) && holdings.resourcelessByAction[a] < 0 { holdings.resourcelessByAction[a] = node }
    }

    /// The holder `node` conflicts with, and how.
    func conflict(of node: Int, with holdings: Holdings) -> (Int, ConflictType)? {
        for r in resources(node) where holdings.resource[r] >= 0 { return (holdings.resource[r], .resource) }
        for b in contra[action[node]] {
            let holder = hasResources(node) ? holdings.resourcelessByAction[b] : holdings.byAction[b]
            if holder >= 0 { return (holder, .action) }
        }
        return nil
    }

    /// The listed conflict between `winner` and `loser`, listing it if the cap left it out.
    mutating func entry(_ type: ConflictType, winner: Int, loser: Int) -> Int {
        if let at = listedIndex[key(type, winner, loser)] { return at }
        listed.append(Entry(type: type, a: winner < n ? winner : loser, b: winner < n ? loser : winner))
        if !counted(type, winner, loser) { detected += 1 }  // counting stopped before its row; known now
        listedIndex[key(type, winner, loser)] = listed.count - 1
        return listed.count - 1
    }

    /// Whether `enumerateConflicts` counted the pair: each pair is counted in one side's row (the
    /// request node against an active one, the customer-wide one of a customer-wide action
    /// conflict, otherwise the better-ranked), and rows after the work budget ran out were not.
    func counted(_ type: ConflictType, _ x: Int, _ y: Int) -> Bool {
        guard countedRanks < n else { return true }
        let side: Int
        if x >= n {
            side = y
        } else if y >= n {
            side = x
        } else if type == .action && hasResources(x) != hasResources(y) {
            side = hasResources(x) ? y : x
        } else {
            side = rank[x] < rank[y] ? x : y
        }
        return rank[side] < countedRanks
    }

    mutating func resolve(_ deps: Dependencies) {
        var kept = Holdings(resources: resourceNames.count, actions: actionNames.count)
        var held = Holdings(resources: resourceNames.count, actions: actionNames.count)
        for k in 0..<m { claim(n + k, in: &held) }
        let activeIDs = m == 0 ? [] : Set(actives.map(\.id))
        var indegree = deps.on.map(\.count)
        var heap = RankHeap(rank: rank)
        for node in order where indegree[node] == 0 { heap.push(node) }
        executionOrder.reserveCapacity(n)
        while let i = heap.pop() {
            if state[i] == .undecided {
                decide(i, deps: deps, kept: &kept, held: held, activeIDs: activeIDs)
            }
            for dependent in deps.dependents[i] {
                indegree[dependent] -= 1
                if indegree[dependent] == 0 { heap.push(dependent) }
            }
        }
        // Left over: recommendations that depend, directly or not, on a dependency cycle.
        var changed = true
        while changed {
            changed = false
            for i in order where state[i] == .undecided {
                guard let blocker = deps.on[i].first(where: { state[$0] == .discarded }) else { continue }
                state[i] = .discarded
                discards[i] = DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
                changed = true
            }
        }
    }

    mutating func decide(_ i: Int, deps: Dependencies, kept: inout Holdings, held: Holdings, activeIDs: Set<String>) {
        var info: DiscardedInfo?
        if let expiry = expiresAt[i], expiry <= now {
            info = DiscardedInfo(reason: .expired)
        } else if let blocker = deps.on[i].first(where: { state[$0] == .discarded }) {
            info = DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
        } else if m > 0 && activeIDs.contains(nodeID[i]) {
            // Reuses the id of an active recommendation: the active one stands.
            info = DiscardedInfo(reason: .conflictsWithActive, activeID: nodeID[i])
        } else if let (holder, type) = conflict(of: i, with: held) {
            info = DiscardedInfo(reason: .conflictsWithActive, entry: entry(type, winner: holder, loser: i), active: holder)
        } else if let (holder, type) = conflict(of: i, with: kept) {
            info = DiscardedInfo(reason: .conflict, entry: entry(type, winner: holder, loser: i), related: holder)
        }
        if let info {
            state[i] = .discarded
            discards[i] = info
        } else {
            state[i] = .kept
            claim(i, in: &kept)
            executionOrder.append(i)
        }
    }

    // MARK: Output

    mutating func assemble(ids: inout some IDGenerator) -> CoordinationOutcome {
        let customer = request.customerID
        // Identifiers in the order the sequential construction would draw them: conflicts in
        // listing order, then each kept recommendation's plan steps and plan, or its approval.
        // With them drawn, the four parts below are independent and run on every core.
        let conflictIDs = (0..<listed.count).map { _ in ids.next() }
        var keptIDCount = 0
        for i in executionOrder {
            if case .needsApproval = configuration.policy.route(recs[inputIndex[i]], autoApprove: request.autoApprove) {
                keptIDCount += 1
            } else {
                keptIDCount += PlanBuilder.stepCount(for: recs[inputIndex[i]].action) + 1
            }
        }
        let keptIDs = (0..<keptIDCount).map { _ in ids.next() }

        let count = listed.count
        let keptPart = Box<KeptPart?>(nil)
        let discardedPart = Box<[DiscardedRecommendation]>([])
        // Conflicts, each resolved: no two parties of a conflict are both kept.
        let conflicts = [Conflict](unsafeUninitializedCapacity: count) { buffer, initialized in
            let target = SendableBuffer(buffer: buffer)
            let work = { @Sendable [self] (task: Int) in
                switch task {
                case 0, 1:
                    var scratch = Scratch(resources: resourceNames.count)
                    for k in (task == 0 ? 0..<(count / 2) : (count / 2)..<count) {
                        (target.buffer.baseAddress! + k).initialize(to: makeConflict(listed[k], id: conflictIDs[k], scratch: &scratch))
                    }
                case 2: keptPart.value = makeKept(ids: keptIDs)
                default: discardedPart.value = makeDiscarded(conflictIDs: conflictIDs)
                }
            }
            if count + n >= 4096 && ProcessInfo.processInfo.activeProcessorCount > 1 {
                DispatchQueue.concurrentPerform(iterations: 4, execute: work)
            } else {
                for task in 0..<4 { work(task) }
            }
            initialized = count
        }
        let discarded = discardedPart.value
        let part = keptPart.value!

        var events: [DomainEvent] = []
        events.reserveCapacity(count + discarded.count + part.events.count + 1)
        let record = CoordinationRecord(conflicts: conflicts, discarded: discarded)
        for index in conflicts.indices {
            events.append(DomainEvent(type: .conflictResolved, customerID: customer, payload: .conflict(index, record)))
        }
        for (index, item) in discarded.enumerated() {
            events.append(DomainEvent(type: .recommendationDiscarded, customerID: customer, recommendationID: item.id,
                                      payload: .discarded(index, record)))
        }
        events.append(contentsOf: part.events)

        let responseID = ids.next()
        var response = CoordinationResponse(
            id: responseID, totalRecommendations: n, conflictsDetected: max(detected, listed.count),
            conflictsResolved: max(detected, listed.count), recommendationsKept: part.kept.count,
            approvalsRequired: part.approvals.count, autoApproved: part.autoApproved, conflicts: conflicts,
            conflictsTruncated: truncated, recommendations: [], approvals: part.approvals, executionPlans: part.plans,
            discarded: discarded, executionOrder: executionOrder.map { nodeID[$0] }, createdAt: now)
        response.recommendations = (0..<n).compactMap { part.keptAt[position[$0]] >= 0 ? part.kept[part.keptAt[position[$0]]] : nil }
        events.append(DomainEvent(type: .coordinationCompleted, customerID: customer, data: [
            "response_id": .string(responseID),
            "total_recommendations": .number(Double(n)),
            "recommendations_kept": .number(Double(part.kept.count)),
            "conflicts_detected": .number(Double(response.conflictsDetected)),
            "approvals_required": .number(Double(part.approvals.count)),
            "auto_approved": .number(Double(part.autoApproved)),
        ]))
        return CoordinationOutcome(response: response, kept: part.kept, approvals: part.approvals, plans: part.plans,
                                   events: events)
    }

    /// The kept recommendations with their status, and their approvals or plans with events.
    struct KeptPart {
        var kept: [Recommendation] = []
        var keptAt: [Int] = []
        var approvals: [Approval] = []
        var plans: [ExecutionPlan] = []
        var autoApproved = 0
        var events: [DomainEvent] = []
    }

    func makeKept(ids: [String]) -> KeptPart {
        let policy = configuration.policy
        let customer = request.customerID
        var part = KeptPart()
        part.kept.reserveCapacity(executionOrder.count)
        part.keptAt = [Int](repeating: -1, count: n)
        var replay = ReplayIDs(ids: ids)
        for i in executionOrder {
            var r = recs[inputIndex[i]]
            switch policy.route(r, autoApprove: request.autoApprove) {
            case .approvedAtOnce, .approvedWithNotice:
                r.status = .approved
                part.autoApproved += 1
                if r.riskLevel == .medium && policy.mediumPolicy == .notify && request.autoApprove {
                    part.events.append(DomainEvent(type: .approvalApproved, customerID: customer, recommendationID: r.id,
                                                   data: ["policy": "notify", "risk_level": .string(r.riskLevel.rawValue)]))
                }
                let plan = PlanBuilder.plan(for: r, now: now, ids: &replay)
                part.plans.append(plan)
                part.events.append(PlanBuilder.createdEvent(plan, approvalID: nil))
            case .needsApproval(let required):
                r.status = .pendingApproval
                let (approval, event) = policy.requestApproval(for: r, required: required, now: now, ids: &replay)
                part.approvals.append(approval)
                part.events.append(event)
            }
            part.keptAt[i] = part.kept.count
            part.kept.append(r)
        }
        precondition(replay.used == ids.count, "identifiers drawn for the kept recommendations do not match their use")
        return part
    }

    /// Discarded recommendations, in request order.
    func makeDiscarded(conflictIDs: [String]) -> [DiscardedRecommendation] {
        var discarded: [DiscardedRecommendation] = []
        discarded.reserveCapacity(n - executionOrder.count)
        for index in 0..<n where state[position[index]] == .discarded {
            let i = position[index]
            let info = discards[i]!
            var item = DiscardedRecommendation(id: nodeID[i], reason: info.reason)
            if let entry = info.entry { item.conflictID = conflictIDs[entry] }
            if let active = info.active { item.activeID = id(active) }
            if let related = info.related { item.relatedID = id(related) }
            if let relatedID = info.relatedID { item.relatedID = relatedID }
            if let activeID = info.activeID { item.activeID = activeID }
            discarded.append(item)
        }
        return discarded
    }

    /// Marks per resource, reused by every conflict's description.
    struct Scratch {
        var mark: [Int]
        var stamp = 0
        init(resources: Int) { mark = [Int](repeating: 0, count: resources) }
    }

    func makeConflict(_ entry: Entry, id conflictID: String, scratch: inout Scratch) -> Conflict {
        switch entry.type {
        case .dependency:
            if let missing = entry.missing {
                let who = id(entry.a)
                return Conflict(id: conflictID, type: .dependency, recommendationIDs: [who, missing],
                                description: "Missing dependency: \(who) depends on \(missing), which is neither in the request nor active",
                                severity: "high", conflictingField: "dependencies", detectedAt: now, resolved: true,
                                resolution: "Discarded \(who)", resolvedAt: now)
            }
            let members = (entry.members ?? []).map(id)
            return Conflict(id: conflictID, type: .dependency, recommendationIDs: members,
                            description: "Circular dependency detected: \(members.joined(separator: " -> "))",
                            severity: "high", conflictingField: "dependencies", detectedAt: now, resolved: true,
                            resolution: "Discarded every member of the cycle: \(members.joined(separator: ", "))", resolvedAt: now)
        case .resource, .action, .timing:
            let description: String
            let severity: String
            let field: String
            if entry.type == .resource {
                scratch.stamp += 1
                for r in resources(entry.b) { scratch.mark[r] = scratch.stamp }
                var text = "Both recommendations affect resources: ["
                text.reserveCapacity(64)
                var first = true
                for r in resources(entry.a) where scratch.mark[r] == scratch.stamp {
                    if !first { text += " " }
                    first = false
                    text += resourceNames[r]
                }
                text += "]"
                description = text
                severity = Self.severity(riskLevel(entry.a), riskLevel(entry.b))
                field = "affected_resources"
            } else {
                let a = rec(entry.a), b = rec(entry.b)
                let wide = a.affectedResources.isEmpty ? a.id : (b.affectedResources.isEmpty ? b.id : nil)
                description = "Contradictory actions: \(a.action) vs \(b.action)"
                    + (wide.map { " (\($0) lists no resources: it acts customer-wide)" } ?? "")
                severity = "high"
                field = "action"
            }
            return Conflict(id: conflictID, type: entry.type, recommendationIDs: [id(entry.a), id(entry.b)], description: description,
                            severity: severity, conflictingField: field, detectedAt: now, resolved: true,
                            resolution: resolution(entry.a, entry.b), resolvedAt: now)
        }
    }

    func resolution(_ x: Int, _ y: Int) -> String {
        func kept(_ node: Int) -> Bool { node >= n || state[node] == .kept }
        func kept(_ winner: Int, over loser: Int) -> String {
            let (priority, savings) = (nodePriority[winner], nodeSavings[winner])
            var text = "Kept "
            text.reserveCapacity(96)
            if winner >= n { text += "active " }
            text += id(winner)
            text += " (priority: "
            text += String(priority)
            text += ", savings: "
            text += DecimalText.twoDecimals(savings)
            text += "), discarded "
            text += id(loser)
            return text
        }
        switch (kept(x), kept(y)) {
        case (true, false): return kept(x, over: y)
        case (false, true): return kept(y, over: x)
        default: return "Discarded both: \(id(x)) (\(reason(x))), \(id(y)) (\(reason(y)))"
        }
    }

    func riskLevel(_ node: Int) -> RiskLevel { nodeRisk[node] }

    func reason(_ node: Int) -> String { node < n ? discards[node]?.reason.rawValue ?? "kept" : "active" }

    /// The seed's `calculateSeverity`, with critical counted as high.
    static func severity(_ a: RiskLevel, _ b: RiskLevel) -> String {
        let highA = a >= .high, highB = b >= .high
        if highA && highB { return "high" }
        if highA || highB { return "medium" }
        return "low"
    }
}

/// A binary min-heap of nodes by rank.
private struct RankHeap {
    let rank: [Int]
    var items: [Int] = []

    init(rank: [Int]) { self.rank = rank }

    mutating func push(_ node: Int) {
        items.append(node)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if rank[items[parent]] <= rank[items[child]] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < items.count && rank[items[left]] < rank[items[best]] { best = left }
                if right < items.count && rank[items[right]] < rank[items[best]] { best = right }
                if best == parent { break }
                items.swapAt(parent, best)
                parent = best
            }
        }
        return top
    }
}

enum DecimalText {
    /// `String(format: "%.2f", value)`, without the cost of a formatter for the usual values:
    /// non-negative, below 1e15, and not within rounding noise of a half cent, where the
    /// formatter's exact rounding and this one could differ.
    static func twoDecimals(_ value: Double) -> String {
        let scaled = value * 100
        guard value >= 0, scaled < 1e15, abs(scaled - scaled.rounded(.down) - 0.5) > max(1e-6, 4 * scaled.ulp) else {
            return String(format: "%.2f", value)
        }
        let cents = Int64(scaled.rounded())
        let fraction = cents % 100
        return String(cents / 100) + (fraction < 10 ? ".0" : ".") + String(fraction)
    }
}

/// A buffer whose disjoint parts are initialized by different threads.
private struct SendableBuffer<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
}

/// Hands out identifiers drawn beforehand, in order.
private struct ReplayIDs: IDGenerator {
    let ids: [String]
    var used = 0

    mutating func next() -> String {
        defer { used += 1 }
        return ids[used]
    }
}

/// A result slot filled by one of the concurrent parts.
private final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
