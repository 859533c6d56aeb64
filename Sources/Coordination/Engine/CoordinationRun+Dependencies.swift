// The dependency graph's conflicts: each missing dependency and each cycle is listed, and
// discards its recommendations before resolution starts.

extension CoordinationRun {
    /// Takes the dependency graph (built here, or on another core by `gather`), lists its
    /// conflicts first, and discards the members of cycles and those with a missing dependency.
    mutating func takeDependencies() {
        state = [State](repeating: .undecided, count: n)
        discards = [DiscardedInfo](repeating: DiscardedInfo(reason: .conflict), count: n)
        if let (group, result) = pendingGraph {
            group.wait()
            pendingGraph = nil
            graph = result.value!
        } else if anyDependencies {
            graph = DependencyGraph(ids: Array(nodeID[0..<n]), activeIDs: actives.map(\.id)) { recs[inputIndex[$0]].dependencies }
        } else {
            graph = DependencyGraph(nodes: n)
        }
        for (node, missing) in graph.missing {
            let entry = ledger.recordMissing(node, missing)
            if state[node] == .undecided {
                state[node] = .discarded
                discards[node] = DiscardedInfo(reason: .dependencyMissing, entry: entry, relatedIsMissing: true)
            }
        }
        for members in graph.cycles {
            let entry = ledger.recordCycle(members)
            for node in members {
                state[node] = .discarded
                discards[node] = DiscardedInfo(reason: .dependencyCycle, entry: entry)
            }
        }
    }
}
