import Foundation
import Testing
@testable import Coordination

/// The engine against `ReferenceResolver` on random requests: small pools of resources and
/// actions so that conflicts abound, dependencies (cycles and missing ones included), active
/// recommendations from earlier requests, expired ones, and ties in rank.
@Suite("Engine against the reference")
struct ReferenceTests {
    struct Case: Sendable {
        var recs: [Recommendation]
        var active: [Recommendation]
    }

    static let actions = ["scale_up", "scale_down", "terminate", "add_capacity", "migrate_to_spot",
                          "reserve_instances", "noop", "enable_caching", "disable_caching"]

    static func randomCase(_ rng: inout SplitMix64) -> Case {
        let count = 1 + rng.below(12)
        let pool = 1 + rng.below(6)
        func resources() -> [String] { (0..<rng.below(3)).map { _ in "r\(rng.below(pool))" } }
        func make(_ id: String, deps: [String]) -> Recommendation {
            rec(id, action: actions[rng.below(actions.count)], resources: resources(), priority: rng.below(3),
                savings: Double(rng.below(3)) * 50, confidence: [0.5, 0.9][rng.below(2)],
                risk: RiskLevel.allCases[rng.below(4)], deps: deps,
                expiresAt: rng.below(10) == 0 ? baseTime.addingTimeInterval(-1) : (rng.below(2) == 0 ? nil : baseTime + 60))
        }
        let activeCount = rng.below(3)
        let active = (0..<activeCount).map { k in make(rng.below(5) == 0 ? "rec-\(k)" : "act-\(k)", deps: []) }
        var recs: [Recommendation] = []
        for i in 0..<count {
            var deps: [String] = []
            for _ in 0..<(rng.below(4) == 0 ? 1 + rng.below(2) : 0) {
                switch rng.below(6) {
                case 0: deps.append("gone-\(rng.below(3))")  // missing
                case 1 where activeCount > 0: deps.append("act-\(rng.below(activeCount))")
                default:
                    let j = rng.below(count)
                    if j != i { deps.append("rec-\(j)") }  // forward ones make cycles possible
                }
            }
            recs.append(make("rec-\(i)", deps: deps))
        }
        return Case(recs: recs, active: active)
    }

    /// Where the engine and the reference disagree, or nil.
    static func disagreement(_ c: Case) -> String? {
        var configuration = EngineConfiguration()
        configuration.maxListedConflicts = .max
        let response = coordinate(c.recs, active: c.active, configuration: configuration).response
        let engine = ReferenceResolver.outcome(of: response)
        let reference = ReferenceResolver().resolve(c.recs, active: c.active, now: baseTime)
        var problems: [String] = []
        if engine.kept != reference.kept { problems.append("execution order: engine \(engine.kept), reference \(reference.kept)") }
        if engine.discarded != reference.discarded {
            problems.append("discarded: engine \(engine.discarded.sorted { $0.key < $1.key }), reference \(reference.discarded.sorted { $0.key < $1.key })")
        }
        if engine.conflicts != reference.conflicts {
            problems.append("conflicts: engine \(engine.conflicts), reference \(reference.conflicts)")
        }
        if response.conflictsDetected != reference.conflicts.count {
            problems.append("conflicts_detected \(response.conflictsDetected), reference \(reference.conflicts.count)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "\n")
    }

    /// The smallest case found that still fails: recommendations, active ones, dependencies and
    /// resources dropped one at a time while the disagreement stays.
    static func shrink(_ c: Case) -> Case {
        var c = c
        var progress = true
        while progress {
            progress = false
            var candidates: [Case] = []
            for i in c.recs.indices { var d = c; d.recs.remove(at: i); candidates.append(d) }
            for i in c.active.indices { var d = c; d.active.remove(at: i); candidates.append(d) }
            for i in c.recs.indices {
                for k in c.recs[i].dependencies.indices { var d = c; d.recs[i].dependencies.remove(at: k); candidates.append(d) }
                for k in c.recs[i].affectedResources.indices { var d = c; d.recs[i].affectedResources.remove(at: k); candidates.append(d) }
            }
            if let smaller = candidates.first(where: { disagreement($0) != nil }) {
                c = smaller
                progress = true
            }
        }
        return c
    }

    @Test("2,000 random requests: kept, discarded with reasons, conflicts and execution order as the reference says")
    func randomRequests() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["REFERENCE_SEED"] ?? "") ?? 0x5EED_2026
        var rng = SplitMix64(seed: seed)
        for round in 0..<2_000 {
            let c = Self.randomCase(&rng)
            guard Self.disagreement(c) != nil else { continue }
            let small = Self.shrink(c)
            let encoder = WireJSON.encoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = { (recs: [Recommendation]) in String(decoding: (try? encoder.encode(recs)) ?? Data(), as: UTF8.self) }
            Issue.record("""
                seed \(seed) (REFERENCE_SEED=\(seed)), request \(round): the engine disagrees with the reference
                \(Self.disagreement(small)!)
                smallest request: \(json(small.recs))
                active: \(json(small.active))
                """)
            return
        }
    }
}
