/// What a pair conflict says besides its resolution: its description, severity, field and
/// parties. Reads only what is fixed once conflicts are enumerated, so it can run while the
/// engine resolves.
struct ConflictDescriber: Sendable {
    let n: Int
    let nodeID: [String]
    let nodeRisk: [RiskLevel]
    let detector: ConflictDetector
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

    func resources(_ node: Int) -> ArraySlice<Int> { detector.resources(node) }
    func hasResources(_ node: Int) -> Bool { detector.hasResources(node) }
    func actionName(_ node: Int) -> String { node < n ? recs[inputIndex[node]].action : actives[node - n].action }

    /// A resource or action conflict's texts; nil for a dependency conflict.
    func describe(_ entry: ConflictLedger.Entry, scratch: inout Scratch, text: inout TextBuffer) -> Described? {
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
            severity = Self.severity(nodeRisk[entry.a], nodeRisk[entry.b])
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

    /// The seed's `calculateSeverity`, with critical counted as high.
    static func severity(_ a: RiskLevel, _ b: RiskLevel) -> String {
        let highA = a >= .high, highB = b >= .high
        if highA && highB { return "high" }
        if highA || highB { return "medium" }
        return "low"
    }
}
