import Foundation

// Reading the request once: ranking keys, and action and resource names interned to dense
// numbers, from which the nodes and the `ConflictDetector`'s indexes are laid out.

extension CoordinationRun {
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
        let actions = part.actions
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
            let result = Box<DependencyGraph?>(nil), group = DispatchGroup()
            let ids = Array(nodeID[0..<n]), activeIDs = actives.map(\.id), recs = recs, inputIndex = inputIndex
            DispatchQueue.global(qos: .userInitiated).async(group: group) {
                result.value = DependencyGraph(ids: ids, activeIDs: activeIDs) { recs[inputIndex[$0]].dependencies }
            }
            pendingGraph = (group, result)
        }
        // Resources by node.
        var action = [Int](repeating: 0, count: total)
        var resourceStart = [Int](repeating: 0, count: total + 1)
        var resourceFlat: [Int] = []
        resourceFlat.reserveCapacity(inputFlat.count)
        for node in 0..<total {
            let index = node < n ? inputIndex[node] : node
            action[node] = inputAction[index]
            resourceStart[node] = resourceFlat.count
            resourceFlat.append(contentsOf: inputFlat[inputStart[index]..<inputStart[index + 1]])
        }
        resourceStart[total] = resourceFlat.count
        resourceNames = resources.names
        detector = ConflictDetector(requestNodes: n, action: action, resourceStart: resourceStart, resourceFlat: resourceFlat,
                                    holderCount: holderCount, actions: actions, contradicting: configuration.actionConflicts)
    }
}
