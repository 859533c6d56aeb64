import Foundation
@testable import Coordination

/// PROTOCOL.md section 2.2 written the plain way: every pair compared, cycles from
/// reachability, and resolution picking the best-ranked ready recommendation each time.
/// Slow (cubic at worst) and meant to be checked by eye; the engine must agree with it. Its
/// contradictions are the tests' own copy of the seed's table (`SeedContradictions`), not the
/// engine's.
struct ReferenceResolver {
    struct Outcome: Equatable {
        var kept: [String]  // in execution order
        var discarded: [String: DiscardedRecommendation.Reason]
        /// Each conflict as `type|ids|shared resources`, sorted (a multiset).
        var conflicts: [String]
    }

    func resolve(_ recs: [Recommendation], active: [Recommendation], now: Date) -> Outcome {
        var conflicts: [String] = []
        let inRequest = Set(recs.map(\.id)), activeIDs = Set(active.map(\.id))
        func conflicting(_ a: Recommendation, _ b: Recommendation) -> Bool {
            let shared = Set(a.affectedResources).intersection(b.affectedResources)
            let sameThing = !shared.isEmpty || a.affectedResources.isEmpty || b.affectedResources.isEmpty
            return !shared.isEmpty || (sameThing && SeedContradictions.contradict(a.action, b.action))
        }
        func record(_ a: Recommendation, _ b: Recommendation) {
            let shared = Set(a.affectedResources).intersection(b.affectedResources)
            let ids = [a.id, b.id].sorted().joined(separator: ",")
            if !shared.isEmpty { conflicts.append("resource|\(ids)|\(shared.sorted().joined(separator: ","))") }
            let sameThing = !shared.isEmpty || a.affectedResources.isEmpty || b.affectedResources.isEmpty
            if sameThing && SeedContradictions.contradict(a.action, b.action) { conflicts.append("action|\(ids)|") }
        }
        // Pair conflicts: within the request, and with the active recommendations.
        for i in recs.indices {
            for j in recs.indices where j > i { record(recs[i], recs[j]) }
            for other in active { record(recs[i], other) }
        }
        // Dependencies: missing ones, and cycles (members reach each other).
        var discarded: [String: DiscardedRecommendation.Reason] = [:]
        for rec in recs {
            for dependency in rec.dependencies where !inRequest.contains(dependency) && !activeIDs.contains(dependency) {
                conflicts.append("dependency|\(rec.id),\(dependency)|")
                discarded[rec.id] = discarded[rec.id] ?? .dependencyMissing
            }
        }
        let byID = Dictionary(recs.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        func reachable(from start: String) -> Set<String> {
            var seen: Set<String> = [], stack = [start]
            while let id = stack.popLast() {
                for dependency in byID[id]!.dependencies where byID[dependency] != nil && seen.insert(dependency).inserted {
                    stack.append(dependency)
                }
            }
            return seen
        }
        let reach = Dictionary(uniqueKeysWithValues: recs.map { ($0.id, reachable(from: $0.id)) })
        var inCycle: Set<String> = []
        for rec in recs where !inCycle.contains(rec.id) {
            let cycle = recs.map(\.id).filter { $0 != rec.id && reach[rec.id]!.contains($0) && reach[$0]!.contains(rec.id) }
            guard !cycle.isEmpty else { continue }
            let members = ([rec.id] + cycle).sorted()
            conflicts.append("dependency|\(members.joined(separator: ","))|")
            for id in members { inCycle.insert(id); discarded[id] = .dependencyCycle }
        }
        // Resolution: the best-ranked recommendation whose dependencies are decided goes next.
        func better(_ a: Recommendation, _ b: Recommendation) -> Bool {
            if a.priority != b.priority { return a.priority > b.priority }
            if a.estimatedSavings != b.estimatedSavings { return a.estimatedSavings > b.estimatedSavings }
            if a.confidence != b.confidence { return a.confidence > b.confidence }
            if a.riskLevel != b.riskLevel { return a.riskLevel < b.riskLevel }
            return a.id < b.id
        }
        var kept: [Recommendation] = []
        var decided = Set(discarded.keys)
        var undecided = recs.filter { discarded[$0.id] == nil }
        while let next = undecided.filter({ $0.dependencies.allSatisfy { byID[$0] == nil || decided.contains($0) } })
            .min(by: better) {
            undecided.removeAll { $0.id == next.id }
            decided.insert(next.id)
            if let expiry = next.expiresAt, expiry <= now {
                discarded[next.id] = .expired
            } else if next.dependencies.contains(where: { discarded[$0] != nil && byID[$0] != nil }) {
                discarded[next.id] = .dependencyDiscarded
            } else if activeIDs.contains(next.id) || active.contains(where: { conflicting(next, $0) }) {
                discarded[next.id] = .conflictsWithActive
            } else if kept.contains(where: { conflicting(next, $0) }) {
                discarded[next.id] = .conflict
            } else {
                kept.append(next)
            }
        }
        // Left over: those waiting, directly or not, on a member of a cycle.
        for rec in undecided { discarded[rec.id] = .dependencyDiscarded }
        return Outcome(kept: kept.map(\.id), discarded: discarded, conflicts: conflicts.sorted())
    }

    /// The engine's outcome in the same terms.
    static func outcome(of response: CoordinationResponse) -> Outcome {
        let conflicts = response.conflicts.map { conflict -> String in
            var shared = ""
            if conflict.type == .resource, let open = conflict.description.firstIndex(of: "["),
               let close = conflict.description.lastIndex(of: "]") {
                shared = conflict.description[conflict.description.index(after: open)..<close]
                    .split(separator: " ").map(String.init).sorted().joined(separator: ",")
            }
            let ids = conflict.type == .dependency && conflict.recommendationIDs.count == 2
                && conflict.description.hasPrefix("Missing")
                ? conflict.recommendationIDs.joined(separator: ",") : conflict.recommendationIDs.sorted().joined(separator: ",")
            return "\(conflict.type.rawValue)|\(ids)|\(shared)"
        }
        return Outcome(kept: response.executionOrder,
                       discarded: Dictionary(response.discarded.map { ($0.id, $0.reason) }, uniquingKeysWith: { a, _ in a }),
                       conflicts: conflicts.sorted())
    }
}
