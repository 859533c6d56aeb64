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
/// recommendations in rank order (a request node's number is its rank), `n..<n+m` the active
/// ones (sorted by id), which rank after every request node.
private struct Run {
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
    /// The node's resources are `resourceFlat[resourceStart[node]..<resourceStart[node + 1]]`.
    var resourceFlat: [Int] = []
    var resourceStart: [Int] = []
    var action: [Int] = []
    /// A request node's index in the request, and the node of each index.
    var inputIndex: [Int] = []
    var position: [Int] = []
    /// Whether any request node lists dependencies.
    var anyDependencies = false
    // Per interned resource / action.
    var resourceNames: [String] = []
    /// A resource's holders, in rank order: `holderFlat[holderStart[r]..<holderStart[r + 1]]`.
    var holderFlat: [Int] = []
    var holderStart: [Int] = []
    var actionCount = 0
    /// The actions that contradict action `a`, by name: `contraFlat[contraStart[a]..<contraStart[a + 1]]`.
    var contraFlat: [Int] = []
    var contraStart: [Int] = []
    /// `contradict[a * actionCount + b]`.
    var contradict: [Bool] = []
    var byAction: [[Int]] = []
    var resourcelessByAction: [[Int]] = []

    // Dependencies: `dependsOn[onStart[i]..<onStart[i + 1]]` (request nodes, in listed order,
    // without repeats) and the reverse, `dependentFlat[dependentStart[j]..<dependentStart[j + 1]]`.
    var onStart: [Int] = []
    var onFlat: [Int] = []
    var dependentStart: [Int] = []
    var dependentFlat: [Int] = []

    // Conflicts.
    struct Entry: Sendable {
        var type: ConflictType
        var a: Int
        var b: Int
        /// A dependency conflict's cycle (in `cycles`) or missing id (in `missingIDs`); else -1.
        var extra: Int = -1
        var isCycle = false
    }
    var listed: [Entry] = []
    var listedIndex = IntTable(capacity: 16)
    /// Dependency cycles' members (rank order).
    var cycles: [[Int]] = []
    var missingIDs: [String] = []
    var detected = 0
    var truncated = false
    /// Request nodes of rank below this had their row enumerated (all of them unless the work
    /// budget ran out).
    var countedRanks = Int.max

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
    }

    func id(_ node: Int) -> String { nodeID[node] }
    func resources(_ node: Int) -> ArraySlice<Int> { resourceFlat[resourceStart[node]..<resourceStart[node + 1]] }
    func hasResources(_ node: Int) -> Bool { resourceStart[node] != resourceStart[node + 1] }
    func holders(_ resource: Int) -> ArraySlice<Int> { holderFlat[holderStart[resource]..<holderStart[resource + 1]] }
    func contra(_ action: Int) -> ArraySlice<Int> { contraFlat[contraStart[action]..<contraStart[action + 1]] }
    func dependencies(_ node: Int) -> ArraySlice<Int> { onFlat[onStart[node]..<onStart[node + 1]] }
    func dependents(_ node: Int) -> ArraySlice<Int> { dependentFlat[dependentStart[node]..<dependentStart[node + 1]] }
    func actionName(_ node: Int) -> String { node < n ? recs[inputIndex[node]].action : actives[node - n].action }

    mutating func execute(ids: inout some IDGenerator) -> CoordinationOutcome {
        gather()
        takeDependencies()
        enumerateConflicts()
        // The conflicts listed so far are described on another core while this one resolves.
        let describer = Describer(n: n, nodeID: nodeID, nodeRisk: nodeRisk, resourceFlat: resourceFlat,
                                  resourceStart: resourceStart, resourceNames: resourceNames, recs: recs,
                                  actives: actives, inputIndex: inputIndex)
        let early = Box<[Describer.Described?]>([])
        let describing = DispatchGroup()
        if listed.count + n >= 4096 && Self.processors > 1 {
            let entries = listed, resourceCount = resourceNames.count
            DispatchQueue.global(qos: .userInitiated).async(group: describing) {
                var scratch = Scratch(resources: resourceCount)
                var text = TextBuffer()
                early.value = entries.map { describer.describe($0, scratch: &scratch, text: &text) }
            }
        }
        resolve()
        return assemble(ids: &ids, describer: describer, early: early, describing: describing)
    }

    // MARK: Ranking and indexes

    /// What ranking compares, gathered so the sort reads one array.
    struct RankKey: Sendable {
        var priority: Int
        var savings: Double
        var confidence: Double
        var risk: RiskLevel
        var index: Int
    }

    /// Ranking keys, best first: priority, savings, confidence (higher first), then lower
    /// risk, then id.
    ///
    /// The same order as sorting with that comparison, faster: a radix sort on priority and the
    /// leading 48 bits of savings, then the comparison within runs that tie on those. (Plain
    /// comparison sort when a value is NaN or priorities span too wide a range.)
    static func ranked(_ keys: [RankKey], ids: [String]) -> [RankKey] {
        func better(_ a: RankKey, _ b: RankKey) -> Bool {
            if a.priority != b.priority { return a.priority > b.priority }
            if a.savings != b.savings { return a.savings > b.savings }
            if a.confidence != b.confidence { return a.confidence > b.confidence }
            if a.risk != b.risk { return a.risk < b.risk }
            return ids[a.index] < ids[b.index]
        }
        var lowest = Int.max, highest = Int.min, numbers = true
        for key in keys {
            lowest = min(lowest, key.priority)
            highest = max(highest, key.priority)
            if key.savings.isNaN || key.confidence.isNaN { numbers = false }
        }
        let (span, overflow) = highest.subtractingReportingOverflow(lowest)
        guard keys.count > 256, numbers, !overflow, span < 1 << 16 else { return keys.sorted(by: better) }
        // Ascending radix key: higher priority first, then higher savings (-0 counts as 0).
        var items = [(key: UInt64, at: Int)]()
        items.reserveCapacity(keys.count)
        for (at, key) in keys.enumerated() {
            let bits = (key.savings + 0).bitPattern
            let ascending = bits >> 63 == 0 ? bits | 1 << 63 : ~bits
            items.append((UInt64(highest - key.priority) << 48 | (~ascending) >> 16, at))
        }
        var other = items
        var counts = [Int](repeating: 0, count: 256)
        for shift in stride(from: UInt64(0), to: 64, by: 8) {
            for k in counts.indices { counts[k] = 0 }
            for item in items { counts[Int(truncatingIfNeeded: item.key >> shift) & 0xFF] += 1 }
            if counts.contains(items.count) { continue }  // every key has this byte
            var sum = 0
            for k in counts.indices { (counts[k], sum) = (sum, sum + counts[k]) }
            for item in items {
                let byte = Int(truncatingIfNeeded: item.key >> shift) & 0xFF
                other[counts[byte]] = item
                counts[byte] += 1
            }
            swap(&items, &other)
        }
        var result = items.map { keys[$0.at] }
        var start = 0
        while start < items.count {
            var end = start + 1
            while end < items.count && items[end].key == items[start].key { end += 1 }
            if end - start > 1 { result[start..<end].sort(by: better) }
            start = end
        }
        return result
    }

    /// What one part of the request reads: ranking keys, ids, expiry, and actions and resources
    /// interned in a table of its own.
    struct GatherPart: Sendable {
        var keys: [RankKey] = []
        var ids: [String] = []
        var expiry: [Date?] = []
        var anyDependencies = false
        var actions = StringTable(capacity: 64)
        /// Per recommendation: its action, and its resources `flat[start[k]..<start[k + 1]]`.
        var action: [Int] = []
        var start: [Int] = [0]
        var flat: [Int] = []
        var resources: StringTable
        var holderCount: [Int] = []
        var seen: [Int] = []

        init(capacity: Int) {
            resources = StringTable(capacity: 2 * capacity)
            keys.reserveCapacity(capacity); ids.reserveCapacity(capacity); expiry.reserveCapacity(capacity)
            action.reserveCapacity(capacity); start.reserveCapacity(capacity + 1); flat.reserveCapacity(3 * capacity)
            holderCount.reserveCapacity(2 * capacity); seen.reserveCapacity(2 * capacity)
        }

        /// Adds a recommendation (`index` tells its listings apart).
        mutating func add(_ index: Int, action actionName: String, resources affected: [String]) {
            action.append(actions.intern(actionName).id)
            for name in affected {
                let (id, inserted) = resources.intern(name)
                if inserted {
                    seen.append(index)
                    holderCount.append(1)
                    flat.append(id)
                    continue
                }
                if seen[id] == index { continue }  // listed twice by the same recommendation
                seen[id] = index
                flat.append(id)
                holderCount[id] += 1
            }
            start.append(flat.count)
        }

        /// Appends a later part's actions and resources: its names interned here, its numbers
        /// translated. (Not its keys, ids and expiry.)
        mutating func appendIndexes(_ other: GatherPart) {
            anyDependencies = anyDependencies || other.anyDependencies
            let actionMap = other.actions.names.map { actions.intern($0).id }
            var resourceMap = [Int](repeating: 0, count: other.resources.count)
            for local in 0..<other.resources.count {
                let (id, inserted) = resources.intern(other.resources.names[local])
                if inserted {
                    seen.append(-1)
                    holderCount.append(0)
                }
                resourceMap[local] = id
                holderCount[id] += other.holderCount[local]
            }
            for a in other.action { action.append(actionMap[a]) }
            let offset = flat.count
            for r in other.flat { flat.append(resourceMap[r]) }
            for k in 1..<other.start.count { start.append(other.start[k] + offset) }
        }
    }

    /// Reads the request's recommendations `range`, in input order (where they lie in memory).
    func gatherPart(_ range: Range<Int>) -> GatherPart {
        var part = GatherPart(capacity: range.count)
        for index in range {
            part.keys.append(RankKey(priority: recs[index].priority, savings: recs[index].estimatedSavings,
                                     confidence: recs[index].confidence, risk: recs[index].riskLevel, index: index))
            part.ids.append(recs[index].id)
            part.expiry.append(recs[index].expiresAt)
            if !recs[index].dependencies.isEmpty { part.anyDependencies = true }
            part.add(index, action: recs[index].action, resources: recs[index].affectedResources)
        }
        return part
    }

    /// Reads every recommendation once, in input order: ranking keys, action and resources
    /// (interned); then numbers request nodes by rank and lays the per-node arrays out in that
    /// order. Priority, savings, confidence (higher first), then lower risk, then id.
    ///
    /// Reading is memory-bound (a recommendation is a dozen objects), so large requests are read
    /// in two halves at once; the second half's names are then interned into the first's table
    /// while the ranking keys are sorted.
    mutating func gather() {
        let total = n + m
        var part: GatherPart
        let keys: [RankKey], ids: [String], expiry: [Date?]
        if n >= 4096 && Self.processors > 1 {
            let halves = (Box(GatherPart(capacity: 0)), Box(GatherPart(capacity: 0)))
            DispatchQueue.concurrentPerform(iterations: 2) { [self] half in
                (half == 0 ? halves.0 : halves.1).value = gatherPart(half == 0 ? 0..<(n / 2) : (n / 2)..<n)
            }
            let allKeys = halves.0.value.keys + halves.1.value.keys
            ids = halves.0.value.ids + halves.1.value.ids
            expiry = halves.0.value.expiry + halves.1.value.expiry
            let sorted = Box<[RankKey]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { [ids] task in
                if task == 0 {
                    sorted.value = Self.ranked(allKeys, ids: ids)
                } else {
                    halves.0.value.appendIndexes(halves.1.value)
                }
            }
            part = halves.0.value
            keys = sorted.value
        } else {
            part = gatherPart(0..<n)
            (keys, ids, expiry) = (Self.ranked(part.keys, ids: part.ids), part.ids, part.expiry)
        }
        for k in 0..<m { part.add(n + k, action: actives[k].action, resources: actives[k].affectedResources) }
        anyDependencies = part.anyDependencies
        let inputAction = part.action, inputStart = part.start, inputFlat = part.flat, holderCount = part.holderCount
        var actions = part.actions
        let resources = part.resources

        inputIndex = keys.map(\.index)
        position = [Int](repeating: 0, count: n)
        for node in 0..<n { position[inputIndex[node]] = node }
        nodeID.reserveCapacity(total); nodePriority.reserveCapacity(total)
        nodeSavings.reserveCapacity(total); nodeRisk.reserveCapacity(total)
        expiresAt.reserveCapacity(n)
        for node in 0..<n {
            let key = keys[node]
            nodeID.append(ids[key.index])
            nodePriority.append(key.priority)
            nodeSavings.append(key.savings)
            nodeRisk.append(key.risk)
            expiresAt.append(expiry[key.index])
        }
        for k in 0..<m {
            nodeID.append(actives[k].id)
            nodePriority.append(actives[k].priority)
            nodeSavings.append(actives[k].estimatedSavings)
            nodeRisk.append(actives[k].riskLevel)
        }

        // Dependencies need only ids and ranks: on a large request, found on another core while
        // this one indexes resources.
        if anyDependencies && n >= 4096 && Self.processors > 1 {
            let copy = self, result = Box<Run?>(nil), group = DispatchGroup()
            DispatchQueue.global(qos: .userInitiated).async(group: group) {
                var other = copy
                other.buildDependencies()
                result.value = other
            }
            pendingDependencies = (group, result)
        }
        // Resources by node; holders by resource, in node (rank) order.
        action = [Int](repeating: 0, count: total)
        resourceStart = [Int](repeating: 0, count: total + 1)
        resourceFlat.reserveCapacity(inputFlat.count)
        for node in 0..<total {
            let index = node < n ? inputIndex[node] : node
            action[node] = inputAction[index]
            resourceStart[node] = resourceFlat.count
            resourceFlat.append(contentsOf: inputFlat[inputStart[index]..<inputStart[index + 1]])
        }
        resourceStart[total] = resourceFlat.count
        resourceNames = resources.names
        holderStart = [Int](repeating: 0, count: resourceNames.count + 1)
        for r in resourceNames.indices { holderStart[r + 1] = holderStart[r] + holderCount[r] }
        var cursor = holderStart
        holderFlat = [Int](repeating: 0, count: resourceFlat.count)
        for node in 0..<total {
            for k in resourceStart[node]..<resourceStart[node + 1] {
                let r = resourceFlat[k]
                holderFlat[cursor[r]] = node
                cursor[r] += 1
            }
        }

        // Contradicting actions, in name order (the table's lists are sorted).
        actionCount = actions.count
        contraStart = [Int](repeating: 0, count: actionCount + 1)
        contradict = [Bool](repeating: false, count: actionCount * actionCount)
        for a in 0..<actionCount {
            contraStart[a] = contraFlat.count
            guard let others = configuration.actionConflicts.contradicting[actions.names[a]] else { continue }
            for other in others {
                guard let b = actions.find(other) else { continue }
                contraFlat.append(b)
                contradict[a * actionCount + b] = true
            }
        }
        contraStart[actionCount] = contraFlat.count
        byAction = [[Int]](repeating: [], count: actionCount)
        resourcelessByAction = [[Int]](repeating: [], count: actionCount)
        for node in 0..<total where contraStart[action[node]] != contraStart[action[node] + 1] {
            byAction[action[node]].append(node)
            if !hasResources(node) { resourcelessByAction[action[node]].append(node) }
        }
    }

    // MARK: Dependencies

    /// Dependencies being found on another core (see `gather`).
    var pendingDependencies: (DispatchGroup, Box<Run?>)?

    /// `buildDependencies`, or its result if it was started on another core.
    mutating func takeDependencies() {
        guard let (group, result) = pendingDependencies else { return buildDependencies() }
        group.wait()
        pendingDependencies = nil
        let other = result.value!
        (state, discards, onStart, onFlat) = (other.state, other.discards, other.onStart, other.onFlat)
        (dependentStart, dependentFlat) = (other.dependentStart, other.dependentFlat)
        (listed, missingIDs, cycles, detected) = (other.listed, other.missingIDs, other.cycles, other.detected)
    }

    mutating func buildDependencies() {
        state = [State](repeating: .undecided, count: n)
        discards = [DiscardedInfo](repeating: DiscardedInfo(reason: .conflict), count: n)
        onStart = [Int](repeating: 0, count: n + 1)
        dependentStart = [Int](repeating: 0, count: n + 1)
        guard anyDependencies else { return }
        // The node of each id (the last of equal ones, as assigning into a dictionary would).
        var index = StringTable(capacity: n)
        var nodeOf = [Int](repeating: 0, count: n)
        for node in 0..<n { nodeOf[index.intern(nodeID[node]).id] = node }
        var activeIDs = StringTable(capacity: m)
        for k in 0..<m { _ = activeIDs.intern(actives[k].id) }
        var stamp = [Int](repeating: -1, count: n)
        var dependentCount = [Int](repeating: 0, count: n)
        for i in 0..<n {
            onStart[i] = onFlat.count
            for dependency in recs[inputIndex[i]].dependencies {
                if let known = index.find(dependency) {
                    let j = nodeOf[known]
                    if stamp[j] != i {
                        stamp[j] = i
                        onFlat.append(j)
                        dependentCount[j] += 1
                    }
                } else if activeIDs.find(dependency) == nil {
                    let entry = listed.count
                    listed.append(Entry(type: .dependency, a: i, b: -1, extra: missingIDs.count))
                    missingIDs.append(dependency)
                    detected += 1
                    if state[i] == .undecided {
                        state[i] = .discarded
                        discards[i] = DiscardedInfo(reason: .dependencyMissing, entry: entry, relatedIsMissing: true)
                    }
                }
            }
        }
        onStart[n] = onFlat.count
        for j in 0..<n { dependentStart[j + 1] = dependentStart[j] + dependentCount[j] }
        var cursor = dependentStart
        dependentFlat = [Int](repeating: 0, count: onFlat.count)
        for i in 0..<n {
            for j in dependencies(i) {
                dependentFlat[cursor[j]] = i
                cursor[j] += 1
            }
        }
        for members in findCycles() {
            let members = members.sorted()
            let entry = listed.count
            listed.append(Entry(type: .dependency, a: members[0], b: -1, extra: cycles.count, isCycle: true))
            cycles.append(members)
            detected += 1
            for node in members {
                state[node] = .discarded
                discards[node] = DiscardedInfo(reason: .dependencyCycle, entry: entry)
            }
        }
    }

    /// Strongly connected components with more than one member (Tarjan, iterative), in rank order.
    func findCycles() -> [[Int]] {
        var index = [Int](repeating: -1, count: n)
        var low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        var counter = 0
        var result: [[Int]] = []
        for root in 0..<n where index[root] < 0 && onStart[root] != onStart[root + 1] {
            var work: [(node: Int, next: Int)] = [(root, onStart[root])]
            index[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let (node, next) = work.last {
                if next < onStart[node + 1] {
                    work[work.count - 1].next += 1
                    let w = onFlat[next]
                    if index[w] < 0 {
                        index[w] = counter; low[w] = counter; counter += 1
                        stack.append(w); onStack[w] = true
                        work.append((w, onStart[w]))
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
            listedIndex.set(key(type, a, b), listed.count)
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
        listed.reserveCapacity(listed.count + min(configuration.maxListedConflicts, 4 * (n + m)))
        listedIndex = IntTable(capacity: min(configuration.maxListedConflicts, 4 * (n + m)) + n / 2)
        for i in 0..<n {
            let actionI = action[i]
            for k in resourceStart[i]..<resourceStart[i + 1] {
                let r = resourceFlat[k]
                for h in holderStart[r]..<holderStart[r + 1] {
                    let j = holderFlat[h]
                    work += 1
                    if j <= i || stamp[j] == i { continue }  // j < n ranks better: its row has it
                    stamp[j] = i
                    record(.resource, i, j)
                    if contradict[actionI * actionCount + action[j]] { record(.action, i, j) }
                }
            }
            for b in contra(actionI) {
                if !hasResources(i) {
                    // Customer-wide: contradicts every recommendation with action b.
                    for j in byAction[b] {
                        work += 1
                        if j < n && !hasResources(j) && j < i { continue }
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
                countedRanks = i + 1
                return
            }
        }
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
        for b in contra(action[node]) {
            let holder = hasResources(node) ? holdings.resourcelessByAction[b] : holdings.byAction[b]
            if holder >= 0 { return (holder, .action) }
        }
        return nil
    }

    /// The listed conflict between `winner` and `loser`, listing it if the cap left it out.
    mutating func entry(_ type: ConflictType, winner: Int, loser: Int) -> Int {
        let key = key(type, winner, loser)
        if let at = listedIndex.find(key) { return at }
        listed.append(Entry(type: type, a: winner < n ? winner : loser, b: winner < n ? loser : winner))
        if !counted(type, winner, loser) { detected += 1 }  // counting stopped before its row; known now
        listedIndex.set(key, listed.count - 1)
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
            side = min(x, y)
        }
        return side < countedRanks
    }

    /// Decides request nodes in rank order, each once its dependencies are decided: those
    /// without dependencies are taken in order, the others from a heap as they become ready.
    mutating func resolve() {
        var kept = Holdings(resources: resourceNames.count, actions: actionCount)
        var held = Holdings(resources: resourceNames.count, actions: actionCount)
        for k in 0..<m { claim(n + k, in: &held) }
        var activeIDs = StringTable(capacity: m)
        for k in 0..<m { _ = activeIDs.intern(actives[k].id) }
        var waiting = [Int](repeating: 0, count: n)
        for i in 0..<n { waiting[i] = onStart[i + 1] - onStart[i] }
        var heap = NodeHeap()
        var next = 0
        executionOrder.reserveCapacity(n)
        while true {
            while next < n && onStart[next] != onStart[next + 1] { next += 1 }
            let i: Int
            if next < n && (heap.top.map { next < $0 } ?? true) {
                i = next
                next += 1
            } else if let top = heap.pop() {
                i = top
            } else {
                break
            }
            if state[i] == .undecided {
                decide(i, kept: &kept, held: held, activeIDs: &activeIDs)
            }
            for dependent in dependents(i) {
                waiting[dependent] -= 1
                if waiting[dependent] == 0 { heap.push(dependent) }
            }
        }
        // Left over: recommendations that depend, directly or not, on a dependency cycle.
        var changed = true
        while changed {
            changed = false
            for i in 0..<n where state[i] == .undecided {
                guard let blocker = dependencies(i).first(where: { state[$0] == .discarded }) else { continue }
                state[i] = .discarded
                discards[i] = DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
                changed = true
            }
        }
    }

    mutating func decide(_ i: Int, kept: inout Holdings, held: Holdings, activeIDs: inout StringTable) {
        var info: DiscardedInfo?
        if let expiry = expiresAt[i], expiry <= now {
            info = DiscardedInfo(reason: .expired)
        } else if let blocker = dependencies(i).first(where: { state[$0] == .discarded }) {
            info = DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
        } else if m > 0 && activeIDs.find(nodeID[i]) != nil {
            // Reuses the id of an active recommendation: the active one stands.
            info = DiscardedInfo(reason: .conflictsWithActive, activeIsOwnID: true)
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

    /// The parts built concurrently: conflicts in `conflictChunks` ranges, the kept
    /// recommendations (execution order) in `keptChunks` ranges, and the discards (node order)
    /// in `discardChunks`. Each writes its elements and events straight to their place in the
    /// outputs.
    static let conflictChunks = 4
    static let keptChunks = 3
    static let discardChunks = 2

    /// Where each kept recommendation's outputs go (by execution position `k`).
    struct KeptLayout {
        var routes: [ApprovalPolicy.Route] = []
        /// Identifiers `idStart[k]..<idStart[k + 1]` of `ids` are the kept recommendation's.
        var idStart: [Int] = []
        /// Its approval or plan is `approvals[approvalStart[k]]` or `plans[planStart[k]]`.
        var approvalStart: [Int] = []
        var planStart: [Int] = []
        /// Its events are `events[eventStart[k]..<eventStart[k + 1]]`.
        var eventStart: [Int] = []
        /// Execution positions in request order.
        var byRequestOrder: [Int] = []
        var autoApproved = 0
    }

    mutating func assemble(ids: inout some IDGenerator, describer: Describer, early: Box<[Describer.Described?]>,
                           describing: DispatchGroup) -> CoordinationOutcome {
        let customer = request.customerID
        let policy = configuration.policy
        // Identifiers in the order the sequential construction would draw them: conflicts in
        // listing order, then each kept recommendation's plan steps and plan, or its approval.
        // With them drawn, the parts below are independent and run on every core.
        let count = listed.count
        var conflictIDs: [String] = []
        conflictIDs.reserveCapacity(count)
        for _ in 0..<count { conflictIDs.append(ids.next()) }
        let keptCount = executionOrder.count
        var layout = KeptLayout()
        layout.routes.reserveCapacity(keptCount)
        layout.idStart = [Int](repeating: 0, count: keptCount + 1)
        layout.approvalStart = [Int](repeating: 0, count: keptCount + 1)
        layout.planStart = [Int](repeating: 0, count: keptCount + 1)
        layout.eventStart = [Int](repeating: 0, count: keptCount + 1)
        let notify = policy.mediumPolicy == .notify && request.autoApprove
        for (k, i) in executionOrder.enumerated() {
            let route = policy.route(risk: nodeRisk[i], autoApprove: request.autoApprove)
            layout.routes.append(route)
            var (ids, approvals, plans, events) = (1, 1, 0, 1)
            if case .needsApproval = route {} else {
                (ids, approvals, plans) = (PlanBuilder.stepCount(for: actionName(i)) + 1, 0, 1)
                if nodeRisk[i] == .medium && notify { events = 2 }
                layout.autoApproved += 1
            }
            layout.idStart[k + 1] = layout.idStart[k] + ids
            layout.approvalStart[k + 1] = layout.approvalStart[k] + approvals
            layout.planStart[k + 1] = layout.planStart[k] + plans
            layout.eventStart[k + 1] = layout.eventStart[k] + events
        }
        var keptIDs: [String] = []
        keptIDs.reserveCapacity(layout.idStart[keptCount])
        for _ in 0..<layout.idStart[keptCount] { keptIDs.append(ids.next()) }

        // Places in request order: kept recommendations (by execution position) and discards (by node).
        var keptPosition = [Int](repeating: -1, count: n)
        for (k, i) in executionOrder.enumerated() { keptPosition[i] = k }
        layout.byRequestOrder.reserveCapacity(keptCount)
        var discardSlot = [Int](repeating: -1, count: n)
        var discardCount = 0
        for index in 0..<n {
            let i = position[index]
            if state[i] == .discarded {
                discardSlot[i] = discardCount
                discardCount += 1
            } else if keptPosition[i] >= 0 {
                layout.byRequestOrder.append(keptPosition[i])
            }
        }

        let kept = Slots<Recommendation>(keptCount)
        let inRequestOrder = Slots<Recommendation>(keptCount)
        let approvals = Slots<Approval>(layout.approvalStart[keptCount])
        let plans = Slots<ExecutionPlan>(layout.planStart[keptCount])
        let discarded = Slots<DiscardedRecommendation>(discardCount)
        let conflictChunks = Self.conflictChunks, keptChunks = Self.keptChunks, discardChunks = Self.discardChunks
        describing.wait()
        let described = early.value
        // Events: conflicts resolved, recommendations discarded (both pointing into `record`),
        // the kept recommendations' events, and `coordination.completed`, last.
        // One record per part: each part's events retain their own (a single shared object
        // would have its reference count bounce between cores).
        let records = (0..<(conflictChunks + discardChunks)).map { _ in CoordinationRecord() }
        let keptEventsAt = count + discardCount
        let eventCount = keptEventsAt + layout.eventStart[keptCount] + 1
        var conflicts: [Conflict] = []
        var events = [DomainEvent](unsafeUninitializedCapacity: eventCount) { eventBuffer, eventsInitialized in
            let events = SendableBuffer(buffer: eventBuffer)
            // Conflicts, each resolved: no two parties of a conflict are both kept.
            conflicts = [Conflict](unsafeUninitializedCapacity: count) { buffer, initialized in
                let target = SendableBuffer(buffer: buffer)
                // Longest first: discards, kept recommendations, then conflicts.
                let tasks = discardChunks + keptChunks + conflictChunks
                let work = { @Sendable [self, conflictIDs, keptIDs, layout, discardSlot, records, described] (task: Int) in
                    if task < discardChunks {
                        makeDiscarded((n * task / discardChunks)..<(n * (task + 1) / discardChunks), conflictIDs: conflictIDs,
                                      slot: discardSlot, into: discarded, events: events.buffer.baseAddress! + count,
                                      record: records[conflictChunks + task])
                    } else if task < discardChunks + keptChunks {
                        let chunk = task - discardChunks
                        let range = (keptCount * chunk / keptChunks)..<(keptCount * (chunk + 1) / keptChunks)
                        makeKept(range, layout: layout, ids: keptIDs, kept: kept, inRequestOrder: inRequestOrder,
                                 approvals: approvals, plans: plans, events: events.buffer.baseAddress! + keptEventsAt)
                    } else {
                        let chunk = task - discardChunks - keptChunks
                        var scratch = Scratch(resources: resourceNames.count)
                        var text = TextBuffer()
                        let record = records[chunk]
                        for k in (count * chunk / conflictChunks)..<(count * (chunk + 1) / conflictChunks) {
                            (target.buffer.baseAddress! + k).initialize(
                                to: makeConflict(listed[k], id: conflictIDs[k], described: k < described.count ? described[k] : nil,
                                                 describer: describer, scratch: &scratch, text: &text))
                            (events.buffer.baseAddress! + k).initialize(
                                to: DomainEvent(type: .conflictResolved, customerID: customer, payload: .conflict(k, record)))
                        }
                    }
                }
                if count + n >= 4096 && Self.processors > 1 {
                    DispatchQueue.concurrentPerform(iterations: tasks, execute: work)
                } else {
                    for task in 0..<tasks { work(task) }
                }
                initialized = count
            }
            eventsInitialized = eventCount - 1
        }
        let discardedList = discarded.take()
        let approvalList = approvals.take()
        let planList = plans.take()
        let keptList = kept.take()
        for record in records { record.fill(conflicts: conflicts, discarded: discardedList) }

        let responseID = ids.next()
        let response = CoordinationResponse(
            id: responseID, totalRecommendations: n, conflictsDetected: max(detected, listed.count),
            conflictsResolved: max(detected, listed.count), recommendationsKept: keptCount,
            approvalsRequired: approvalList.count, autoApproved: layout.autoApproved, conflicts: conflicts,
            conflictsTruncated: truncated, recommendations: inRequestOrder.take(), approvals: approvalList,
            executionPlans: planList, discarded: discardedList, executionOrder: executionOrder.map { nodeID[$0] },
            createdAt: now)
        events.append(DomainEvent(type: .coordinationCompleted, customerID: customer, data: [
            "response_id": .string(responseID),
            "total_recommendations": .number(Double(n)),
            "recommendations_kept": .number(Double(keptCount)),
            "conflicts_detected": .number(Double(response.conflictsDetected)),
            "approvals_required": .number(Double(approvalList.count)),
            "auto_approved": .number(Double(layout.autoApproved)),
        ]))
        return CoordinationOutcome(response: response, kept: keptList, approvals: approvalList, plans: planList,
                                   events: events)
    }

    static let processors = ProcessInfo.processInfo.activeProcessorCount

    /// The kept recommendations at `range` of the execution order, with their status, and their
    /// approvals or plans with events.
    @inline(never)
    func makeKept(_ range: Range<Int>, layout: KeptLayout, ids: [String], kept: Slots<Recommendation>,
                  inRequestOrder: Slots<Recommendation>, approvals: Slots<Approval>, plans: Slots<ExecutionPlan>,
                  events: UnsafeMutablePointer<DomainEvent>) {
        let policy = configuration.policy
        let customer = request.customerID
        var cache = EventDataCache()
        // In request order, where the recommendations lie in memory in sequence.
        for slot in range {
            let k = layout.byRequestOrder[slot]
            var r = recs[inputIndex[executionOrder[k]]]
            var event = layout.eventStart[k]
            var replay = ReplayIDs(ids: ids, used: layout.idStart[k])
            switch layout.routes[k] {
            case .approvedAtOnce, .approvedWithNotice:
                r.status = .approved
                if r.riskLevel == .medium && policy.mediumPolicy == .notify && request.autoApprove {
                    (events + event).initialize(to: DomainEvent(type: .approvalApproved, customerID: customer, recommendationID: r.id,
                                                                data: ["policy": "notify", "risk_level": .string(r.riskLevel.rawValue)]))
                    event += 1
                }
                let plan = PlanBuilder.plan(for: r, now: now, ids: &replay)
                (events + event).initialize(to: PlanBuilder.createdEvent(plan, action: r.action, approvalID: nil, cache: &cache))
                plans.initialize(layout.planStart[k], consume plan)
            case .needsApproval(let required):
                r.status = .pendingApproval
                let (approval, requested) = policy.requestApproval(for: r, required: required, now: now, ids: &replay, cache: &cache)
                approvals.initialize(layout.approvalStart[k], consume approval)
                (events + event).initialize(to: requested)
            }
            precondition(replay.used == layout.idStart[k + 1], "identifiers drawn for a kept recommendation do not match their use")
            inRequestOrder.initialize(slot, copy r)
            kept.initialize(k, r)
        }
    }

    /// Discarded recommendations, at their place in request order, and their events.
    @inline(never)
    func makeDiscarded(_ nodes: Range<Int>, conflictIDs: [String], slot: [Int], into discarded: Slots<DiscardedRecommendation>,
                       events: UnsafeMutablePointer<DomainEvent>, record: CoordinationRecord) {
        let customer = request.customerID
        for i in nodes where state[i] == .discarded {
            let info = discards[i]
            var item = DiscardedRecommendation(id: nodeID[i], reason: info.reason)
            if info.entry >= 0 { item.conflictID = conflictIDs[info.entry] }
            if info.active >= 0 { item.activeID = id(info.active) }
            if info.related >= 0 { item.relatedID = id(info.related) }
            if info.relatedIsMissing { item.relatedID = missingIDs[listed[info.entry].extra] }
            if info.activeIsOwnID { item.activeID = nodeID[i] }
            discarded.initialize(slot[i], item)
            (events + slot[i]).initialize(to: DomainEvent(type: .recommendationDiscarded, customerID: customer,
                                                          recommendationID: nodeID[i], payload: .discarded(slot[i], record)))
        }
    }

    /// Marks per resource, reused by conflicts' descriptions (between long resource lists).
    struct Scratch {
        var mark: [Int] = []
        var stamp = 0
        let resources: Int

        init(resources: Int) { self.resources = resources }

        mutating func startMarking() -> Int {
            if mark.isEmpty { mark = [Int](repeating: 0, count: resources) }
            stamp += 1
            return stamp
        }
    }

    func makeConflict(_ entry: Entry, id conflictID: String, described: Describer.Described?, describer: Describer,
                      scratch: inout Scratch, text: inout TextBuffer) -> Conflict {
        switch entry.type {
        case .dependency:
            if !entry.isCycle {
                let who = id(entry.a)
                let missing = missingIDs[entry.extra]
                return Conflict(id: conflictID, type: .dependency, recommendationIDs: [who, missing],
                                description: "Missing dependency: \(who) depends on \(missing), which is neither in the request nor active",
                                severity: "high", conflictingField: "dependencies", detectedAt: now, resolved: true,
                                resolution: "Discarded \(who)", resolvedAt: now)
            }
            let members = cycles[entry.extra].map(id)
            return Conflict(id: conflictID, type: .dependency, recommendationIDs: members,
                            description: "Circular dependency detected: \(members.joined(separator: " -> "))",
                            severity: "high", conflictingField: "dependencies", detectedAt: now, resolved: true,
                            resolution: "Discarded every member of the cycle: \(members.joined(separator: ", "))", resolvedAt: now)
        case .resource, .action, .timing:
            let described = described ?? describer.describe(entry, scratch: &scratch, text: &text)!
            text.reset()
            resolution(entry.a, entry.b, into: &text)
            return Conflict(id: conflictID, type: entry.type, recommendationIDs: described.ids,
                            description: described.description, severity: described.severity,
                            conflictingField: described.field, detectedAt: now, resolved: true,
                            resolution: text.makeString(), resolvedAt: now)
        }
    }

    /// How a conflict was resolved, from the decisions.
    func resolution(_ x: Int, _ y: Int, into text: inout TextBuffer) {
        func kept(_ node: Int) -> Bool { node >= n || state[node] == .kept }
        func kept(_ winner: Int, over loser: Int, into text: inout TextBuffer) {
            text.append("Kept ")
            if winner >= n { text.append("active ") }
            text.append(id(winner))
            text.append(" (priority: ")
            text.append(nodePriority[winner])
            text.append(", savings: ")
            text.appendTwoDecimals(nodeSavings[winner])
            text.append("), discarded ")
            text.append(id(loser))
        }
        switch (kept(x), kept(y)) {
        case (true, false): kept(x, over: y, into: &text)
        case (false, true): kept(y, over: x, into: &text)
        default:
            text.append("Discarded both: ")
            text.append(id(x))
            text.append(" (")
            text.append(reason(x))
            text.append("), ")
            text.append(id(y))
            text.append(" (")
            text.append(reason(y))
            text.append(byte: 0x29)
        }
    }

    func reason(_ node: Int) -> String {
        guard node < n else { return "active" }
        return state[node] == .discarded ? discards[node].reason.rawValue : "kept"
    }

    /// The seed's `calculateSeverity`, with critical counted as high.
    static func severity(_ a: RiskLevel, _ b: RiskLevel) -> String {
        let highA = a >= .high, highB = b >= .high
        if highA && highB { return "high" }
        if highA || highB { return "medium" }
        return "low"
    }
}

/// What a pair conflict says besides its resolution: its description, severity, field and
/// parties. Reads only what is fixed once conflicts are enumerated, so it can run while the
/// engine resolves.
private struct Describer: Sendable {
    let n: Int
    let nodeID: [String]
    let nodeRisk: [RiskLevel]
    let resourceFlat: [Int]
    let resourceStart: [Int]
    let resourceNames: [String]
    let recs: [Recommendation]
    let actives: [Recommendation]
    let inputIndex: [Int]

    struct Described: Sendable {
        var description: String
        var severity: String
        var field: String
        var ids: [String]
    }

    func resources(_ node: Int) -> ArraySlice<Int> { resourceFlat[resourceStart[node]..<resourceStart[node + 1]] }
    func hasResources(_ node: Int) -> Bool { resourceStart[node] != resourceStart[node + 1] }
    func actionName(_ node: Int) -> String { node < n ? recs[inputIndex[node]].action : actives[node - n].action }

    /// A resource or action conflict's texts; nil for a dependency conflict.
    func describe(_ entry: Run.Entry, scratch: inout Run.Scratch, text: inout TextBuffer) -> Described? {
        let severity: String
        let field: String
        text.reset()
        switch entry.type {
        case .dependency:
            return nil
        case .resource:
            let ownResources = resources(entry.a), otherResources = resources(entry.b)
            // Lists are short: compare them directly, unless that would be slow.
            let direct = ownResources.count * otherResources.count <= 64
            if !direct {
                let stamp = scratch.startMarking()
                for r in otherResources { scratch.mark[r] = stamp }
            }
            text.append("Both recommendations affect resources: [")
            var first = true
            for r in ownResources where direct ? otherResources.contains(r) : scratch.mark[r] == scratch.stamp {
                if !first { text.append(byte: 0x20) }
                first = false
                text.append(resourceNames[r])
            }
            text.append(byte: 0x5D)
            severity = Run.severity(nodeRisk[entry.a], nodeRisk[entry.b])
            field = "affected_resources"
        case .action, .timing:
            text.append("Contradictory actions: ")
            text.append(actionName(entry.a))
            text.append(" vs ")
            text.append(actionName(entry.b))
            let wide = !hasResources(entry.a) ? entry.a : (!hasResources(entry.b) ? entry.b : -1)
            if wide >= 0 {
                text.append(" (")
                text.append(nodeID[wide])
                text.append(" lists no resources: it acts customer-wide)")
            }
            severity = "high"
            field = "action"
        }
        return Described(description: text.makeString(), severity: severity, field: field,
                         ids: [nodeID[entry.a], nodeID[entry.b]])
    }
}

/// A binary min-heap of nodes (a node's number is its rank).
private struct NodeHeap {
    var items: [Int] = []

    var top: Int? { items.first }

    mutating func push(_ node: Int) {
        items.append(node)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
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
                if left < items.count && items[left] < items[best] { best = left }
                if right < items.count && items[right] < items[best] { best = right }
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
        guard let cents = cents(value) else { return String(format: "%.2f", value) }
        let fraction = cents % 100
        return String(cents / 100) + (fraction < 10 ? ".0" : ".") + String(fraction)
    }

    /// The value in whole cents where rounding it is safe (see `twoDecimals`), else nil.
    static func cents(_ value: Double) -> Int64? {
        let scaled = value * 100
        guard value >= 0, scaled < 1e15, abs(scaled - scaled.rounded(.down) - 0.5) > max(1e-6, 4 * scaled.ulp) else {
            return nil
        }
        return Int64(scaled.rounded())
    }
}

/// A result slot filled by one of the concurrent parts.
private final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
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

/// Elements of an array-to-be, each initialized once at its place, possibly by different
/// threads (each place by one), then moved into an array.
private final class Slots<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    let count: Int
    private var taken = false

    init(_ count: Int) {
        self.count = count
        base = .allocate(capacity: max(1, count))
    }

    func initialize(_ index: Int, _ value: consuming Element) {
        precondition(index >= 0 && index < count)
        (base + index).initialize(to: value)
    }

    /// The elements, all of which must have been initialized.
    func take() -> [Element] {
        precondition(!taken)
        taken = true
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { buffer.baseAddress!.moveInitialize(from: base, count: count) }
            initialized = count
        }
    }

    /// Moves the elements (all initialized) to `target`.
    func move(to target: UnsafeMutablePointer<Element>) {
        precondition(!taken)
        taken = true
        target.moveInitialize(from: base, count: count)
    }

    deinit {
        if !taken { base.deinitialize(count: count) }
        base.deallocate()
    }
}
