// A listed conflict as the response shows it: its description (`ConflictDescriber`) and how
// it was resolved, read from the decisions.

extension CoordinationRun {
    func makeConflict(_ entry: ConflictLedger.Entry, id conflictID: String, described: ConflictDescriber.Described?,
                      describer: ConflictDescriber, scratch: inout ConflictDescriber.Scratch, text: inout TextBuffer) -> Conflict {
        switch entry.type {
        case .dependency:
            if !entry.isCycle {
                let who = id(entry.a)
                let missing = ledger.missingIDs[entry.extra]
                return Conflict(id: conflictID, type: .dependency, recommendationIDs: [who, missing],
                                description: "Missing dependency: \(who) depends on \(missing), which is neither in the request nor active",
                                severity: "high", conflictingField: "dependencies", detectedAt: now, resolved: true,
                                resolution: "Discarded \(who)", resolvedAt: now)
            }
            let members = ledger.cycles[entry.extra].map(id)
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
}
