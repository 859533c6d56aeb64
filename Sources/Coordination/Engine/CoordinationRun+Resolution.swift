// Resolution (PROTOCOL.md section 2.2): in rank order, each recommendation once the ones it
// depends on are decided, kept unless it conflicts with one already kept or with an active one.

extension CoordinationRun {
    /// Decides request nodes in rank order, each once its dependencies are decided: those
    /// without dependencies are taken in order, the others from a heap as they become ready.
    mutating func resolve() {
        var kept = detector.holdings()
        var held = detector.holdings()
        for k in 0..<m { detector.claim(n + k, in: &held) }
        var activeIDs = StringTable(capacity: m)
        for k in 0..<m { _ = activeIDs.intern(actives[k].id) }
        var waiting = [Int](repeating: 0, count: n)
        for i in 0..<n { waiting[i] = graph.dependencies(i).count }
        var heap = NodeHeap()
        var next = 0
        executionOrder.reserveCapacity(n)
        while true {
            while next < n && graph.hasDependencies(next) { next += 1 }
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
            for dependent in graph.dependents(i) {
                waiting[dependent] -= 1
                if waiting[dependent] == 0 { heap.push(dependent) }
            }
        }
        // Left over: recommendations that depend, directly or not, on a dependency cycle.
        var changed = true
        while changed {
            changed = false
            for i in 0..<n where state[i] == .undecided {
                guard let blocker = graph.dependencies(i).first(where: { state[$0] == .discarded }) else { continue }
                state[i] = .discarded
                // The same precedence as `decide`: expiry is named before a discarded dependency.
                let expired = expiresAt[i].map { $0 <= now } ?? false
                discards[i] = expired ? DiscardedInfo(reason: .expired) : DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
                changed = true
            }
        }
    }

    mutating func decide(_ i: Int, kept: inout ConflictDetector.Holdings, held: ConflictDetector.Holdings, activeIDs: inout StringTable) {
        var info: DiscardedInfo?
        if let expiry = expiresAt[i], expiry <= now {
            info = DiscardedInfo(reason: .expired)
        } else if let blocker = graph.dependencies(i).first(where: { state[$0] == .discarded }) {
            info = DiscardedInfo(reason: .dependencyDiscarded, related: blocker)
        } else if m > 0 && activeIDs.find(nodeID[i]) != nil {
            // Reuses the id of an active recommendation: the active one stands.
            info = DiscardedInfo(reason: .conflictsWithActive, activeIsOwnID: true)
        } else if let (holder, type) = detector.conflict(of: i, with: held) {
            info = DiscardedInfo(reason: .conflictsWithActive, entry: entry(type, winner: holder, loser: i), active: holder)
        } else if let (holder, type) = detector.conflict(of: i, with: kept) {
            info = DiscardedInfo(reason: .conflict, entry: entry(type, winner: holder, loser: i), related: holder)
        }
        if let info {
            state[i] = .discarded
            discards[i] = info
        } else {
            state[i] = .kept
            detector.claim(i, in: &kept)
            executionOrder.append(i)
        }
    }


    /// The listed conflict between `winner` and `loser`, listing it if the cap left it out.
    mutating func entry(_ type: ConflictType, winner: Int, loser: Int) -> Int {
        let key = ConflictLedger.key(type, winner, loser)
        if let at = ledger.index.find(key) { return at }
        ledger.entries.append(ConflictLedger.Entry(type: type, a: winner < n ? winner : loser, b: winner < n ? loser : winner))
        // Counting stopped before its row; known now.
        if !detector.counted(type, winner, loser, countedRanks: ledger.countedRanks) { ledger.detected += 1 }
        ledger.index.set(key, ledger.entries.count - 1)
        return ledger.entries.count - 1
    }
}
