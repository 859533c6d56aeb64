/// Finds the pairs of recommendations that conflict (PROTOCOL.md section 2.2): `resource` when
/// they share an affected resource, `action` when their actions contradict (in either
/// direction) on a shared resource or when either lists no resources (it acts customer-wide).
/// Dependency conflicts are the `DependencyGraph`'s.
///
/// Nodes are indexed by resource (holders, in rank order) and by action, so enumerating costs
/// the pairs found, not every pair. Resolution asks the same indexes whether a candidate
/// conflicts with what is already kept (`conflict(of:with:)`).
///
/// Only the pairs of the contradiction table can contradict, so nothing here is sized by the
/// number of distinct action names squared: whether two actions contradict is a look through
/// the first one's few contradicting actions (`contra`), and an action outside the table has
/// none. (An `actionCount × actionCount` table of booleans let 24,000 made-up action names
/// cost 576 MB.)
struct ConflictDetector: Sendable {
    /// Request nodes are `0..<requestNodes`; the others are active.
    private(set) var requestNodes = 0
    /// The action (interned) of each node.
    private(set) var action: [Int] = []
    /// The node's resources are `resourceFlat[resourceStart[node]..<resourceStart[node + 1]]`.
    private(set) var resourceFlat: [Int] = []
    private(set) var resourceStart: [Int] = [0]
    /// A resource's holders, in rank order: `holderFlat[holderStart[r]..<holderStart[r + 1]]`.
    private var holderFlat: [Int] = []
    private var holderStart: [Int] = [0]
    private(set) var actionCount = 0
    /// The actions that contradict action `a`, by name: `contraFlat[contraStart[a]..<contraStart[a + 1]]`.
    private var contraFlat: [Int] = []
    private var contraStart: [Int] = [0]
    /// Nodes whose action contradicts some action, by action; and those of them without resources.
    private var byAction: [[Int]] = []
    private var resourcelessByAction: [[Int]] = []

    init() {}

    /// Indexes the nodes: `action[node]` and resources `resourceFlat[resourceStart[node]..<resourceStart[node + 1]]`
    /// (no resource twice), `holderCount[r]` the nodes listing resource `r`.
    init(requestNodes: Int, action: [Int], resourceStart: [Int], resourceFlat: [Int], holderCount: [Int],
         actions: StringTable, contradicting table: ActionConflicts) {
        self.requestNodes = requestNodes
        self.action = action
        self.resourceStart = resourceStart
        self.resourceFlat = resourceFlat
        let total = action.count
        // Holders by resource, in node (rank) order.
        holderStart = [Int](repeating: 0, count: holderCount.count + 1)
        for r in holderCount.indices { holderStart[r + 1] = holderStart[r] + holderCount[r] }
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
        var actions = actions
        actionCount = actions.count
        contraStart = [Int](repeating: 0, count: actionCount + 1)
        for a in 0..<actionCount {
            contraStart[a] = contraFlat.count
            guard let others = table.contradicting[actions.names[a]] else { continue }
            for other in others {
                guard let b = actions.find(other) else { continue }
                contraFlat.append(b)
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

    func resources(_ node: Int) -> ArraySlice<Int> { resourceFlat[resourceStart[node]..<resourceStart[node + 1]] }
    func hasResources(_ node: Int) -> Bool { resourceStart[node] != resourceStart[node + 1] }
    func contra(_ action: Int) -> ArraySlice<Int> { contraFlat[contraStart[action]..<contraStart[action + 1]] }

    /// Whether actions `a` and `b` contradict: `b` among `a`'s contradicting actions (a handful
    /// at most; none for an action outside the table).
    @inline(__always)
    func contradict(_ a: Int, _ b: Int) -> Bool {
        var k = contraStart[a]
        let end = contraStart[a + 1]
        while k < end {
            if contraFlat[k] == b { return true }
            k += 1
        }
        return false
    }

    /// Counts every conflicting pair once, in the row of one side (see `counted`), and lists
    /// them up to the ledger's cap, in rank order. Stops counting after `budget` pair
    /// examinations (the ledger is then truncated).
    func enumerate(into ledger: inout ConflictLedger, budget: Int) {
        let n = requestNodes, total = action.count
        var stamp = [Int](repeating: -1, count: total)
        var work = 0
        ledger.entries.reserveCapacity(ledger.entries.count + min(ledger.maxListed, 4 * total))
        ledger.index = IntTable(capacity: min(ledger.maxListed, 4 * total) + n / 2)
        for i in 0..<n {
            let actionI = action[i]
            let contradicts = contraStart[actionI] != contraStart[actionI + 1]
            for k in resourceStart[i]..<resourceStart[i + 1] {
                let r = resourceFlat[k]
                for h in holderStart[r]..<holderStart[r + 1] {
                    let j = holderFlat[h]
                    work += 1
                    if j <= i || stamp[j] == i { continue }  // j < n ranks better: its row has it
                    stamp[j] = i
                    ledger.record(.resource, i, j)
                    if contradicts && contradict(actionI, action[j]) { ledger.record(.action, i, j) }
                }
            }
            for b in contra(actionI) {
                if !hasResources(i) {
                    // Customer-wide: contradicts every recommendation with action b.
                    for j in byAction[b] {
                        work += 1
                        if j < n && !hasResources(j) && j < i { continue }
                        ledger.record(.action, i, j)
                    }
                } else {
                    // Customer-wide request nodes count this pair from their side.
                    for j in resourcelessByAction[b] where j >= n {
                        work += 1
                        ledger.record(.action, i, j)
                    }
                }
            }
            if work > budget {
                ledger.truncated = true
                ledger.countedRanks = i + 1
                return
            }
        }
    }

    /// Whether `enumerate` counted the pair: each pair is counted in one side's row (the
    /// request node against an active one, the customer-wide one of a customer-wide action
    /// conflict, otherwise the better-ranked), and rows after the work budget ran out were not.
    func counted(_ type: ConflictType, _ x: Int, _ y: Int, countedRanks: Int) -> Bool {
        let n = requestNodes
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

    // MARK: Against what is held

    /// Who holds what: kept recommendations (or active ones), the first per resource and action.
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

    /// Empty holdings for these nodes.
    func holdings() -> Holdings { Holdings(resources: holderStart.count - 1, actions: actionCount) }

    /// Adds `node` to `holdings`.
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
}
