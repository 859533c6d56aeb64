/// Dependencies between a request's recommendations (nodes `0..<nodes`, in rank order): who
/// depends on whom, the dependencies on ids known nowhere, and the cycles (PROTOCOL.md section
/// 2.2: a `dependency` conflict per cycle and per missing dependency).
struct DependencyGraph: Sendable {
    let nodes: Int
    /// `onFlat[onStart[i]..<onStart[i + 1]]`: what node `i` depends on, in listed order,
    /// without repeats.
    private(set) var onStart: [Int]
    private(set) var onFlat: [Int] = []
    /// The reverse: `dependentFlat[dependentStart[j]..<dependentStart[j + 1]]` depend on `j`.
    private var dependentStart: [Int]
    private var dependentFlat: [Int] = []
    /// Dependencies on ids neither in the request nor active, by node, then in listed order.
    private(set) var missing: [(node: Int, id: String)] = []
    /// Cycles of two or more members (each in rank order), in the order Tarjan's search finds them.
    private(set) var cycles: [[Int]] = []

    /// A graph without edges.
    init(nodes: Int) {
        self.nodes = nodes
        onStart = [Int](repeating: 0, count: nodes + 1)
        dependentStart = onStart
    }

    /// The graph of request nodes with these ids (rank order) and `dependencies(node)`; a
    /// dependency on one of `activeIDs` is met already and adds no edge. Where ids repeat, a
    /// dependency on the id means the last node with it (as assigning into a dictionary would).
    init(ids: [String], activeIDs: [String], dependencies: (Int) -> [String]) {
        let n = ids.count
        self.init(nodes: n)
        var index = StringTable(capacity: n)
        var nodeOf = [Int](repeating: 0, count: n)
        for node in 0..<n { nodeOf[index.intern(ids[node]).id] = node }
        var active = StringTable(capacity: activeIDs.count)
        for id in activeIDs { _ = active.intern(id) }
        var stamp = [Int](repeating: -1, count: n)
        var dependentCount = [Int](repeating: 0, count: n)
        for i in 0..<n {
            onStart[i] = onFlat.count
            for dependency in dependencies(i) {
                if let known = index.find(dependency) {
                    let j = nodeOf[known]
                    if stamp[j] != i {
                        stamp[j] = i
                        onFlat.append(j)
                        dependentCount[j] += 1
                    }
                } else if active.find(dependency) == nil {
                    missing.append((i, dependency))
                }
            }
        }
        onStart[n] = onFlat.count
        for j in 0..<n { dependentStart[j + 1] = dependentStart[j] + dependentCount[j] }
        var cursor = dependentStart
        dependentFlat = [Int](repeating: 0, count: onFlat.count)
        for i in 0..<n {
            for j in self.dependencies(i) {
                dependentFlat[cursor[j]] = i
                cursor[j] += 1
            }
        }
        cycles = stronglyConnectedComponents().map { $0.sorted() }
    }

    /// The nodes `node` depends on.
    func dependencies(_ node: Int) -> ArraySlice<Int> { onFlat[onStart[node]..<onStart[node + 1]] }
    /// The nodes that depend on `node`.
    func dependents(_ node: Int) -> ArraySlice<Int> { dependentFlat[dependentStart[node]..<dependentStart[node + 1]] }
    /// Whether `node` depends on anything in the request.
    func hasDependencies(_ node: Int) -> Bool { onStart[node] != onStart[node + 1] }
}
