import Foundation
import Testing
@testable import Coordination

@Suite struct ActionConflictTests {
    @Test(arguments: [("scale_up", "scale_down"), ("scale_down", "scale_up"),
                      ("migrate_to_spot", "reserve_instances"), ("reserve_instances", "migrate_to_spot")])
    func contradictoryOnSharedResource(winner: String, loser: String) throws {
        let response = coordinate([
            rec("a", action: winner, resources: ["r1", "r2"], priority: 8),
            rec("b", action: loser, resources: ["r2", "r3"], priority: 2),
        ]).response
        #expect(response.keptIDs == ["a"])
        let action = response.conflicts(of: .action)
        #expect(action.count == 1)
        #expect(action.first.map { Set($0.recommendationIDs) } == ["a", "b"])
        #expect(action.first?.description == "Contradictory actions: \(winner) vs \(loser)")
        #expect(response.conflicts(of: .resource).count == 1)
        #expect(response.conflictsDetected == 2)
        let discard = try #require(response.discard("b"))
        #expect(discard.reason == .conflict)
        #expect(discard.relatedID == "a")
        #expect(response.conflict(discard.conflictID) != nil)
    }

    @Test func noActionConflictOnDisjointResources() {
        let response = coordinate([
            rec("a", action: "scale_up", resources: ["cluster-a"], priority: 8),
            rec("b", action: "scale_down", resources: ["cluster-b"], priority: 2),
        ]).response
        #expect(response.keptIDs == ["a", "b"])
        #expect(response.conflicts.isEmpty)
        #expect(response.conflictsDetected == 0)
        #expect(response.discarded.isEmpty)
    }

    @Test(arguments: [true, false])
    func customerWideContradiction(wideWins: Bool) throws {
        let response = coordinate([
            rec("wide", action: "scale_up", resources: [], priority: wideWins ? 9 : 1),
            rec("narrow", action: "scale_down", resources: ["r1"], priority: 5),
        ]).response
        let (winner, loser) = wideWins ? ("wide", "narrow") : ("narrow", "wide")
        #expect(response.keptIDs == [winner])
        #expect(response.conflicts.count == 1)
        let conflict = try #require(response.conflicts.first)
        #expect(conflict.type == .action)
        #expect(conflict.description.contains("wide lists no resources"))
        #expect(response.discard(loser)?.reason == .conflict)
        #expect(response.discard(loser)?.conflictID == conflict.id)
        #expect(response.conflictsDetected == 1)
    }

    @Test func twoCustomerWideContradictionsCountOnce() {
        let response = coordinate([
            rec("up", action: "scale_up", priority: 9),
            rec("down", action: "scale_down", priority: 1),
            rec("other", action: "noop", priority: 5),
        ]).response
        #expect(response.keptIDs == ["up", "other"])
        #expect(response.conflictsDetected == 1)
        #expect(response.discard("down")?.reason == .conflict)
    }

    /// The engine's table is exactly the seed's, in both directions: no pair lost, none added.
    @Test func tableIsTheSeedsBothWays() {
        #expect(SeedContradictions.symmetric.count == 11)
        #expect(SeedContradictions.symmetric.values.reduce(0) { $0 + $1.count } == 14)
        #expect(ActionConflicts.seed.contradicting == SeedContradictions.symmetric)
        #expect(EngineConfiguration().actionConflicts.contradicting == SeedContradictions.symmetric)
        for (action, others) in SeedContradictions.rows {
            for other in others {
                #expect(ActionConflicts.seed.contradict(action, other), "\(action) vs \(other)")
                #expect(ActionConflicts.seed.contradict(other, action), "\(other) vs \(action) (the seed's one-way bug)")
            }
        }
        #expect(!ActionConflicts.seed.contradict("scale_up", "migrate_to_spot"))
    }

    /// What the engine does, for every ordered pair of the seed's actions (and one it does not
    /// name): two customer-wide recommendations conflict exactly when the seed's table, made
    /// symmetric, says so.
    @Test func engineFollowsTheSeedForEveryPair() {
        let actions = SeedContradictions.actions + ["noop"]
        #expect(actions.count == 12)
        for first in actions {
            for second in actions where second != first {
                let response = coordinate([
                    rec("first", action: first, priority: 9),
                    rec("second", action: second, priority: 1),
                ]).response
                if SeedContradictions.contradict(first, second) {
                    #expect(response.keptIDs == ["first"], "\(first) then \(second)")
                    #expect(response.conflicts(of: .action).count == 1, "\(first) then \(second)")
                    #expect(response.discard("second")?.reason == .conflict, "\(first) then \(second)")
                } else {
                    #expect(response.keptIDs.sorted() == ["first", "second"], "\(first) then \(second)")
                    #expect(response.conflicts.isEmpty, "\(first) then \(second)")
                }
            }
        }
    }
}

@Suite struct DependencyTests {
    @Test func twoCycle() throws {
        let response = coordinate([
            rec("a", resources: ["r1"], deps: ["b"]),
            rec("b", resources: ["r2"], deps: ["a"]),
            rec("c", resources: ["r3"], deps: ["a"]),
            rec("free", resources: ["r4"]),
        ]).response
        let deps = response.conflicts(of: .dependency)
        #expect(deps.count == 1)
        #expect(deps.first.map { Set($0.recommendationIDs) } == ["a", "b"])
        #expect(deps.first?.recommendationIDs.count == 2)
        #expect(response.discard("a")?.reason == .dependencyCycle)
        #expect(response.discard("b")?.reason == .dependencyCycle)
        #expect(response.discard("a")?.conflictID == deps.first?.id)
        #expect(response.discard("c")?.reason == .dependencyDiscarded)
        #expect(response.discard("c")?.relatedID == "a")
        #expect(response.keptIDs == ["free"])
        #expect(response.conflictsDetected == 1)
    }

    @Test func threeCycleWithChainedDependents() throws {
        let response = coordinate([
            rec("a", deps: ["b"]), rec("b", deps: ["c"]), rec("c", deps: ["a"]),
            rec("d", deps: ["c"]), rec("e", deps: ["d"]), rec("f"),
        ]).response
        let deps = response.conflicts(of: .dependency)
        #expect(deps.count == 1)
        #expect(deps.first.map { Set($0.recommendationIDs) } == ["a", "b", "c"])
        for id in ["a", "b", "c"] { #expect(response.discard(id)?.reason == .dependencyCycle) }
        #expect(response.discard("d")?.reason == .dependencyDiscarded)
        #expect(response.discard("d")?.relatedID == "c")
        #expect(response.discard("e")?.reason == .dependencyDiscarded)
        #expect(response.discard("e")?.relatedID == "d")
        #expect(response.executionOrder == ["f"])
    }

    @Test func twoSeparateCycles() {
        let response = coordinate([
            rec("a", deps: ["b"]), rec("b", deps: ["a"]),
            rec("x", deps: ["y"]), rec("y", deps: ["z"]), rec("z", deps: ["x"]),
        ]).response
        let sets = Set(response.conflicts(of: .dependency).map { Set($0.recommendationIDs) })
        #expect(sets == [["a", "b"], ["x", "y", "z"]])
        #expect(response.keptIDs.isEmpty)
    }

    @Test func missingDependency() throws {
        let response = coordinate([rec("a", deps: ["ghost"]), rec("b", deps: ["a"]), rec("c")]).response
        let discard = try #require(response.discard("a"))
        #expect(discard.reason == .dependencyMissing)
        #expect(discard.relatedID == "ghost")
        let conflict = try #require(response.conflict(discard.conflictID))
        #expect(conflict.type == .dependency)
        #expect(conflict.recommendationIDs == ["a", "ghost"])
        #expect(response.discard("b")?.reason == .dependencyDiscarded)
        #expect(response.discard("b")?.relatedID == "a")
        #expect(response.keptIDs == ["c"])
    }

    @Test func dependencyOnActiveIsSatisfied() {
        let active = rec("act-1", resources: ["other"], status: .approved)
        let response = coordinate([rec("a", resources: ["r1"], deps: ["act-1"])], active: [active]).response
        #expect(response.keptIDs == ["a"])
        #expect(response.conflicts.isEmpty)
    }

    @Test func executionOrderRespectsDependenciesWithRankTieBreaks() {
        let response = coordinate([
            rec("x", priority: 1),
            rec("y", priority: 9, deps: ["x"]),
            rec("z", priority: 5),
            rec("w", priority: 5, savings: 500),
            rec("v", priority: 5, savings: 500, deps: ["z"]),
        ]).response
        // Ranks: y, v, w, z, x (v and w tie on priority and savings, then id); y waits for x, v for z.
        #expect(response.executionOrder == ["w", "z", "v", "x", "y"])
        #expect(response.recommendations.map(\.id) == ["x", "y", "z", "w", "v"])  // request order
    }

    @Test func discardedDependencyDiscardsDependent() {
        let response = coordinate([
            rec("winner", resources: ["r"], priority: 9),
            rec("loser", resources: ["r"], priority: 1),
            rec("child", resources: ["s"], priority: 9, deps: ["loser"]),
        ]).response
        #expect(response.keptIDs == ["winner"])
        #expect(response.discard("child")?.reason == .dependencyDiscarded)
        #expect(response.discard("child")?.relatedID == "loser")
    }
}

@Suite struct ResolutionTests {
    @Test func rankingTieBreaks() {
        func winner(_ a: Recommendation, _ b: Recommendation) -> Set<String> {
            coordinate([a, b]).response.keptIDs
        }
        #expect(winner(rec("a", resources: ["r"], priority: 1), rec("b", resources: ["r"], priority: 2)) == ["b"])
        #expect(winner(rec("a", resources: ["r"], savings: 10), rec("b", resources: ["r"], savings: 20)) == ["b"])
        #expect(winner(rec("a", resources: ["r"], confidence: 0.9), rec("b", resources: ["r"], confidence: 0.8)) == ["a"])
        #expect(winner(rec("a", resources: ["r"], risk: .high), rec("b", resources: ["r"], risk: .medium)) == ["b"])
        #expect(winner(rec("b", resources: ["r"]), rec("a", resources: ["r"])) == ["a"])
    }

    @Test func conflictWithActive() throws {
        let active = rec("act-1", action: "scale_down", resources: ["r1"], status: .approved)
        let response = coordinate([
            rec("new", action: "resize", resources: ["r1", "r2"], priority: 10),
            rec("fine", resources: ["r3"]),
        ], active: [active]).response
        #expect(response.keptIDs == ["fine"])
        let discard = try #require(response.discard("new"))
        #expect(discard.reason == .conflictsWithActive)
        #expect(discard.activeID == "act-1")
        let conflict = try #require(response.conflict(discard.conflictID))
        #expect(Set(conflict.recommendationIDs) == ["new", "act-1"])
        #expect(conflict.resolution?.contains("Kept active act-1") == true)
        #expect(response.conflictsDetected == 1)
    }

    @Test func customerWideConflictWithActive() throws {
        let active = rec("act-1", action: "scale_up", resources: [], status: .executing)
        let response = coordinate([rec("new", action: "scale_down", resources: ["r1"])], active: [active]).response
        #expect(response.keptIDs.isEmpty)
        #expect(response.discard("new")?.reason == .conflictsWithActive)
        #expect(response.discard("new")?.activeID == "act-1")
        #expect(response.conflicts.map(\.type) == [.action])
    }

    @Test func reuseOfActiveID() throws {
        let active = rec("act-1", resources: ["elsewhere"], status: .pendingApproval)
        let response = coordinate([rec("act-1", resources: ["r1"])], active: [active]).response
        #expect(response.keptIDs.isEmpty)
        let discard = try #require(response.discard("act-1"))
        #expect(discard.reason == .conflictsWithActive)
        #expect(discard.activeID == "act-1")
    }

    @Test func expiredRecommendation() {
        let response = coordinate([
            rec("old", resources: ["r"], priority: 9, expiresAt: baseTime.addingTimeInterval(-1)),
            rec("young", resources: ["r"], priority: 1, expiresAt: baseTime.addingTimeInterval(3600)),
        ]).response
        #expect(response.discard("old")?.reason == .expired)
        #expect(response.keptIDs == ["young"])
    }

    @Test func listingCap() throws {
        let count = 3000
        let recs = (0..<count).map { rec("r\($0)", resources: ["shared"], priority: $0 % 10, savings: Double($0)) }
        var configuration = EngineConfiguration()
        configuration.maxListedConflicts = 100
        let response = coordinate(recs, configuration: configuration).response
        #expect(response.recommendationsKept == 1)
        #expect(response.keptIDs == ["r2999"])
        #expect(response.conflictsTruncated)
        #expect(response.conflictsDetected == count * (count - 1) / 2)
        #expect(response.conflictsResolved == response.conflictsDetected)
        #expect(response.discarded.count == count - 1)
        let listed = Set(response.conflicts.map(\.id))
        #expect(listed.count == response.conflicts.count)
        for discard in response.discarded {
            #expect(discard.reason == .conflict)
            #expect(discard.conflictID.map(listed.contains) == true)
        }
    }

    @Test func noCapWhenUnderLimit() {
        let recs = (0..<20).map { rec("r\($0)", resources: ["shared"], priority: $0) }
        let response = coordinate(recs).response
        #expect(response.conflicts.count == 190)
        #expect(response.conflictsDetected == 190)
        #expect(!response.conflictsTruncated)
    }

    @Test func workBudgetKeepsCountWithinTruth() {
        let count = 400
        let recs = (0..<count).map { rec("r\($0)", resources: ["shared"], priority: $0 % 7, savings: Double($0)) }
        var configuration = EngineConfiguration()
        configuration.maxConflictWork = 10_000
        configuration.maxListedConflicts = 50
        let response = coordinate(recs, configuration: configuration).response
        #expect(response.conflictsTruncated)
        #expect(response.recommendationsKept == 1)
        // Rows of ranks 0...25 are enumerated (26 * 400 pair looks pass the budget): each pair once.
        #expect(response.conflictsDetected == (0...25).reduce(0) { $0 + (count - 1 - $1) })
        #expect(response.conflictsDetected >= response.conflicts.count)
        let listed = Set(response.conflicts.map(\.id))
        #expect(response.discarded.allSatisfy { $0.conflictID.map(listed.contains) == true })
    }

    @Test func autoApproveFalseRoutesEverythingToApproval() {
        let response = coordinate([rec("low", risk: .low)], autoApprove: false).response
        #expect(response.approvalsRequired == 1)
        #expect(response.autoApproved == 0)
        #expect(response.executionPlans.isEmpty)
    }

    @Test func mediumNotifyApprovesAtOnce() throws {
        var configuration = EngineConfiguration()
        configuration.policy.mediumPolicy = .notify
        let outcome = coordinate([rec("m", risk: .medium), rec("h", risk: .high)], configuration: configuration)
        #expect(outcome.response.autoApproved == 1)
        #expect(outcome.response.approvalsRequired == 1)
        let event = try #require(outcome.events.first { $0.type == .approvalApproved })
        #expect(event.recommendationID == "m")
        #expect(event.data["policy"] == "notify")
        #expect(outcome.response.executionPlans.map(\.recommendationID) == ["m"])
        #expect(outcome.events.last?.type == .coordinationCompleted)
    }

    @Test func criticalNeedsTwoApprovals() {
        let outcome = coordinate([rec("c", risk: .critical)])
        #expect(outcome.approvals.first?.requiredApprovals == 2)
        #expect(outcome.approvals.first?.expiresAt == baseTime.addingTimeInterval(4 * 3600))
    }
}

@Suite struct OrderIndependenceTests {
    static let actions = ["scale_up", "scale_down", "terminate", "add_capacity", "migrate_to_spot",
                          "reserve_instances", "migrate_to_on_demand", "resize", "enable_caching", "disable_caching"]

    func randomRequest(_ rng: inout SplitMix64, count: Int) -> [Recommendation] {
        var recs: [Recommendation] = []
        for index in 0..<count {
            let resourceCount = Int.random(in: 0...3, using: &rng)
            let resources = (0..<resourceCount).map { _ in "r\(Int.random(in: 0..<12, using: &rng))" }
            var deps: [String] = []
            if index > 0 && Double.random(in: 0..<1, using: &rng) < 0.3 {
                deps.append("rec-\(Int.random(in: 0..<index, using: &rng))")
            }
            if Double.random(in: 0..<1, using: &rng) < 0.05 {  // forward edges make cycles
                deps.append("rec-\(Int.random(in: 0..<count, using: &rng))")
            }
            if Double.random(in: 0..<1, using: &rng) < 0.03 { deps.append("missing-\(index)") }
            deps.removeAll { $0 == "rec-\(index)" }
            recs.append(rec("rec-\(index)", action: Self.actions.randomElement(using: &rng)!, resources: resources,
                            priority: Int.random(in: 1...3, using: &rng), savings: Double(Int.random(in: 0...3, using: &rng)) * 100,
                            confidence: [0.5, 0.9].randomElement(using: &rng)!, risk: RiskLevel.allCases.randomElement(using: &rng)!,
                            deps: deps,
                            expiresAt: Double.random(in: 0..<1, using: &rng) < 0.03 ? baseTime.addingTimeInterval(-5) : nil))
        }
        return recs
    }

    struct Summary: Equatable {
        var kept: Set<String>
        var discarded: Set<String>
        var order: [String]
        var detected: Int
    }

    func summary(_ response: CoordinationResponse) -> Summary {
        Summary(kept: response.keptIDs, discarded: Set(response.discarded.map { "\($0.id)/\($0.reason.rawValue)" }),
                order: response.executionOrder, detected: response.conflictsDetected)
    }

    @Test func outcomeDoesNotDependOnInputOrder() {
        var rng = SplitMix64(seed: 0xC00D)
        let actives = [rec("act-a", action: "scale_up", resources: ["r0"], status: .approved),
                       rec("act-b", action: "scale_down", resources: [], status: .executing)]
        var sawCycle = false, sawConflict = false, sawMissing = false
        for trial in 0..<200 {
            let recs = randomRequest(&rng, count: 30)
            let active = trial % 4 == 0 ? actives : []
            let first = coordinate(recs, active: active).response
            let expected = summary(first)
            sawCycle = sawCycle || first.discarded.contains { $0.reason == .dependencyCycle }
            sawConflict = sawConflict || first.discarded.contains { $0.reason == .conflict }
            sawMissing = sawMissing || first.discarded.contains { $0.reason == .dependencyMissing }
            #expect(Set(expected.order) == expected.kept)
            #expect(expected.kept.count + first.discarded.count == 30)
            for _ in 0..<5 {
                let shuffled = recs.shuffled(using: &rng)
                let other = coordinate(shuffled, active: active.shuffled(using: &rng)).response
                #expect(summary(other) == expected, "trial \(trial)")
            }
            checkInvariants(first, recs, active)
        }
        #expect(sawCycle && sawConflict && sawMissing)
    }

    /// No two kept recommendations conflict; every dependency of a kept one precedes it.
    func checkInvariants(_ response: CoordinationResponse, _ recs: [Recommendation], _ active: [Recommendation]) {
        let kept = response.recommendations
        func clash(_ a: Recommendation, _ b: Recommendation) -> Bool {
            let shared = !Set(a.affectedResources).isDisjoint(with: b.affectedResources)
            let wide = a.affectedResources.isEmpty || b.affectedResources.isEmpty
            return shared || ((shared || wide) && SeedContradictions.contradict(a.action, b.action))
        }
        for (i, a) in kept.enumerated() {
            for b in kept[(i + 1)...] { #expect(!clash(a, b), "\(a.id) and \(b.id) both kept") }
            for b in active { #expect(!clash(a, b), "\(a.id) kept against active \(b.id)") }
        }
        let position = Dictionary(uniqueKeysWithValues: response.executionOrder.enumerated().map { ($1, $0) })
        for r in kept {
            for d in r.dependencies where !active.contains(where: { $0.id == d }) {
                #expect(position[d].map { $0 < position[r.id]! } == true, "\(r.id) before its dependency \(d)")
            }
        }
    }
}

@Suite struct LargeRequestTests {
    /// Enough conflicts that they are made on several threads: the result is still exactly
    /// the sequential one (ids drawn in listing order, every discard pointing at its conflict).
    @Test func manyConflictsAreDeterministic() throws {
        var rng = SplitMix64(seed: 11)
        let actions = OrderIndependenceTests.actions
        let recs = (0..<2500).map { index in
            rec("rec-\(index)", action: actions.randomElement(using: &rng)!,
                resources: (0..<Int.random(in: 1...3, using: &rng)).map { _ in "r\(Int.random(in: 0..<400, using: &rng))" },
                priority: Int.random(in: 1...10, using: &rng), savings: Double(Int.random(in: 0...10_000, using: &rng)) / 100,
                deps: index > 0 && Int.random(in: 0..<10, using: &rng) == 0 ? ["rec-\(Int.random(in: 0..<index, using: &rng))"] : [])
        }
        var configuration = EngineConfiguration()
        configuration.maxListedConflicts = 10_000  // more than the default, to list them all
        let first = coordinate(recs, configuration: configuration)
        let second = coordinate(recs.reversed(), configuration: configuration)
        let response = first.response
        #expect(response.conflicts.count > 4096)
        #expect(response.conflicts.map(\.id) == (1...response.conflicts.count).map { "gen-\($0)" })
        #expect(response.conflicts == second.response.conflicts)
        #expect(response.discarded.sorted { $0.id < $1.id } == second.response.discarded.sorted { $0.id < $1.id })
        #expect(response.executionOrder == second.response.executionOrder)
        let byID = Dictionary(uniqueKeysWithValues: response.conflicts.map { ($0.id, $0) })
        for discard in response.discarded where discard.reason == .conflict {
            let conflict = try #require(byID[discard.conflictID ?? ""])
            #expect(Set(conflict.recommendationIDs) == [discard.id, discard.relatedID ?? ""])
            #expect(conflict.resolution?.hasPrefix("Kept \(discard.relatedID ?? "")") == true)
        }
        let events = first.events.filter { $0.type == .conflictResolved }
        #expect(events.count == response.conflicts.count)
        for (event, conflict) in zip(events, response.conflicts).prefix(50) {
            #expect(event.data == ["conflict_id": .string(conflict.id), "type": .string(conflict.type.rawValue),
                                   "recommendation_ids": .array(conflict.recommendationIDs.map { .string($0) }),
                                   "resolution": .string(conflict.resolution ?? "")])
        }
        let discardEvents = first.events.filter { $0.type == .recommendationDiscarded }
        #expect(discardEvents.map(\.recommendationID) == response.discarded.map(\.id))
        for (event, item) in zip(discardEvents, response.discarded).prefix(50) {
            #expect(event.data["reason"] == .string(item.reason.rawValue))
            #expect(event.data["conflict_id"] == item.conflictID.map { .string($0) })
            #expect(event.data["related_id"] == item.relatedID.map { .string($0) })
        }
    }
}

extension LargeRequestTests {
    /// Identifiers are drawn in one sequence: conflicts in listing order, then per kept
    /// recommendation in execution order its plan steps and plan (or its approval), then the
    /// response; whether the parts are made in parallel or not.
    @Test(arguments: [40, 3000])
    func identifiersFollowOneSequence(count: Int) throws {
        var rng = SplitMix64(seed: 5)
        let actions = ["migrate_to_spot", "scale_down", "scale_up", "resize", "reserve_instances"]
        let recs = (0..<count).map { index in
            rec("rec-\(index)", action: actions.randomElement(using: &rng)!,
                resources: ["r\(Int.random(in: 0..<(count / 2), using: &rng))"],
                priority: Int.random(in: 1...10, using: &rng), risk: RiskLevel.allCases.randomElement(using: &rng)!)
        }
        let outcome = coordinate(recs)
        let response = outcome.response
        func number(_ id: String) -> Int { Int(id.dropFirst(4))! }
        var expected = response.conflicts.count
        #expect(response.conflicts.map { number($0.id) } == (0..<expected).map { $0 + 1 })
        let approvals = Dictionary(uniqueKeysWithValues: response.approvals.map { ($0.recommendationID, $0) })
        let plans = Dictionary(uniqueKeysWithValues: response.executionPlans.map { ($0.recommendationID, $0) })
        for id in response.executionOrder {
            if let approval = approvals[id] {
                expected += 1
                #expect(number(approval.id) == expected)
            } else {
                let plan = try #require(plans[id])
                for step in plan.steps {
                    expected += 1
                    #expect(number(step.id) == expected)
                }
                expected += 1
                #expect(number(plan.id) == expected)
            }
        }
        #expect(number(response.id) == expected + 1)
        #expect(!response.approvals.isEmpty && !response.executionPlans.isEmpty)
        #expect(outcome.events.filter { $0.type == .approvalRequested }.map(\.approvalID) == response.approvals.map(\.id))
        #expect(outcome.events.filter { $0.type == .planCreated }.map(\.planID) == response.executionPlans.map(\.id))
    }
}

extension LargeRequestTests {
    /// A large request is ranked by the same rules as a small one (the engine sorts large ones
    /// by a radix key first): priority, savings, confidence, lower risk, id; -0 savings equal 0.
    @Test(arguments: [(1, 10), (-50_000, 50_000), (Int.min / 2, Int.max / 2)])
    func largeRequestRankedByTheRules(priorities: (Int, Int)) {
        var rng = SplitMix64(seed: 3)
        let savings: [Double] = [0, -0.0, 0.01, 99.99, 100, 1e300, -5, .infinity, 12.5]
        let recs = (0..<3000).map { index in
            rec("rec-\(Int.random(in: 0..<1_000_000, using: &rng))-\(index)",
                priority: Int.random(in: 0..<4, using: &rng) == 0 ? priorities.0 : Int.random(in: priorities.0...priorities.1, using: &rng),
                savings: savings.randomElement(using: &rng)!, confidence: [0.5, 0.9].randomElement(using: &rng)!,
                risk: RiskLevel.allCases.randomElement(using: &rng)!)
        }
        let expected = recs.sorted { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            if a.estimatedSavings != b.estimatedSavings { return a.estimatedSavings > b.estimatedSavings }
            if a.confidence != b.confidence { return a.confidence > b.confidence }
            if a.riskLevel != b.riskLevel { return a.riskLevel < b.riskLevel }
            return a.id < b.id
        }.map(\.id)
        #expect(coordinate(recs).response.executionOrder == expected)
        #expect(coordinate(recs.reversed()).response.executionOrder == expected)
    }

    /// Names are compared as Swift compares strings (canonical equivalence), whether or not
    /// they are ASCII: the engine hashes ASCII names' bytes and falls back to a dictionary.
    @Test func canonicallyEqualNamesAreOneResource() {
        var recs = [rec("kelvin-ascii", resources: ["K"], priority: 9)]  // first and last: read by different threads
        recs += (0..<5000).map { rec("rec-\($0)", resources: ["r\($0)"]) }
        recs.append(rec("kelvin-sign", resources: ["\u{212A}"], priority: 8))
        recs.append(rec("cafe-nfc", resources: ["caf\u{E9}"], priority: 9))
        recs.append(rec("cafe-nfd", resources: ["cafe\u{301}"], priority: 8))
        recs.append(rec("dep", resources: ["other"], deps: ["\u{212A}-id"]))
        recs.append(rec("K-id", resources: ["elsewhere"]))
        let response = coordinate(recs).response
        #expect(response.discard("kelvin-sign")?.relatedID == "kelvin-ascii")
        #expect(response.discard("cafe-nfd")?.relatedID == "cafe-nfc")
        #expect(response.discard("dep") == nil)  // "\u{212A}-id" == "K-id"
        #expect(response.recommendationsKept == recs.count - 2)
    }
}
