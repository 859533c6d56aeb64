// Dependency cycles: Tarjan's strongly connected components, iterative (a request may chain
// thousands of recommendations, deeper than the stack allows recursion).

extension DependencyGraph {
    /// Strongly connected components with more than one member (Tarjan, iterative), in rank order.
    func stronglyConnectedComponents() -> [[Int]] {
        let n = nodes
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
}
