import Foundation

// The output: conflicts, kept recommendations (with their approvals or plans), discards and
// events, built in parts on every core, each written straight to its place through unsafe
// pointers (`Slots`, `SendableBuffer`).

extension CoordinationRun {
    // MARK: Output

    /// The parts built concurrently: conflicts in `conflictChunks` ranges, the kept
    /// recommendations (execution order) in `keptChunks` ranges, and the discards (node order)
    /// in `discardChunks`. Each writes its elements and events straight to their place in the
    /// outputs.
    static let conflictChunks = 4
    static let keptChunks = 3
    static let discardChunks = 2

    /// Where each kept recommendation's outputs go (by execution position `k`).
    struct KeptLayout {
        var routes: [ApprovalPolicy.Route] = []
        /// Identifiers `idStart[k]..<idStart[k + 1]` of `ids` are the kept recommendation's.
        var idStart: [Int] = []
        /// Its approval or plan is `approvals[approvalStart[k]]` or `plans[planStart[k]]`.
        var approvalStart: [Int] = []
        var planStart: [Int] = []
        /// Its events are `events[eventStart[k]..<eventStart[k + 1]]`.
        var eventStart: [Int] = []
        /// Execution positions in request order.
        var byRequestOrder: [Int] = []
        var autoApproved = 0
    }

    mutating func assemble(ids: inout some IDGenerator, describer: ConflictDescriber, early: Box<[ConflictDescriber.Described?]>,
                           describing: DispatchGroup) -> CoordinationOutcome {
        let customer = request.customerID
        // Identifiers in the order the sequential construction would draw them: conflicts in
        // listing order, then each kept recommendation's plan steps and plan, or its approval.
        // With them drawn, the parts below are independent and run on every core.
        let count = ledger.entries.count
        let conflictIDs = Self.draw(count, from: &ids)
        let keptCount = executionOrder.count
        let (layout, discardSlot, discardCount) = layOut()
        let keptIDs = Self.draw(layout.idStart[keptCount], from: &ids)

        let kept = Slots<Recommendation>(keptCount)
        let inRequestOrder = Slots<Recommendation>(keptCount)
        let approvals = Slots<Approval>(layout.approvalStart[keptCount])
        let plans = Slots<ExecutionPlan>(layout.planStart[keptCount])
        let discarded = Slots<DiscardedRecommendation>(discardCount)
        let conflictChunks = Self.conflictChunks, keptChunks = Self.keptChunks, discardChunks = Self.discardChunks
        describing.wait()
        let described = early.value
        // Events: conflicts resolved, recommendations discarded (both pointing into `record`),
        // the kept recommendations' events, and `coordination.completed`, last.
        // One record per part: each part's events retain their own (a single shared object
        // would have its reference count bounce between cores).
        let records = (0..<(conflictChunks + discardChunks)).map { _ in CoordinationRecord() }
        let keptEventsAt = count + discardCount
        let eventCount = keptEventsAt + layout.eventStart[keptCount] + 1
        var conflicts: [Conflict] = []
        var events = [DomainEvent](unsafeUninitializedCapacity: eventCount) { eventBuffer, eventsInitialized in
            let events = SendableBuffer(buffer: eventBuffer)
            // Conflicts, each resolved: no two parties of a conflict are both kept.
            conflicts = [Conflict](unsafeUninitializedCapacity: count) { buffer, initialized in
                let target = SendableBuffer(buffer: buffer)
                // Longest first: discards, kept recommendations, then conflicts.
                let tasks = discardChunks + keptChunks + conflictChunks
                let work = { @Sendable [self, conflictIDs, keptIDs, layout, discardSlot, records, described] (task: Int) in
                    if task < discardChunks {
                        makeDiscarded((n * task / discardChunks)..<(n * (task + 1) / discardChunks), conflictIDs: conflictIDs,
                                      slot: discardSlot, into: discarded, events: events.buffer.baseAddress! + count,
                                      record: records[conflictChunks + task])
                    } else if task < discardChunks + keptChunks {
                        let chunk = task - discardChunks
                        let range = (keptCount * chunk / keptChunks)..<(keptCount * (chunk + 1) / keptChunks)
                        makeKept(range, layout: layout, ids: keptIDs, kept: kept, inRequestOrder: inRequestOrder,
                                 approvals: approvals, plans: plans, events: events.buffer.baseAddress! + keptEventsAt)
                    } else {
                        let chunk = task - discardChunks - keptChunks
                        var scratch = ConflictDescriber.Scratch(resources: resourceNames.count)
                        var text = TextBuffer()
                        let record = records[chunk]
                        for k in (count * chunk / conflictChunks)..<(count * (chunk + 1) / conflictChunks) {
                            (target.buffer.baseAddress! + k).initialize(
                                to: makeConflict(ledger.entries[k], id: conflictIDs[k], described: k < described.count ? described[k] : nil,
                                                 describer: describer, scratch: &scratch, text: &text))
                            (events.buffer.baseAddress! + k).initialize(
                                to: DomainEvent(type: .conflictResolved, customerID: customer, payload: .conflict(k, record)))
                        }
                    }
                }
                if count + n >= 4096 && Self.processors > 1 {
                    DispatchQueue.concurrentPerform(iterations: tasks, execute: work)
                } else {
                    for task in 0..<tasks { work(task) }
                }
                initialized = count
            }
            eventsInitialized = eventCount - 1
        }
        let discardedList = discarded.take()
        let approvalList = approvals.take()
        let planList = plans.take()
        let keptList = kept.take()
        for record in records { record.fill(conflicts: conflicts, discarded: discardedList) }

        let response = makeResponse(id: ids.next(), layout: layout, conflicts: conflicts, kept: inRequestOrder.take(),
                                    approvals: approvalList, plans: planList, discarded: discardedList)
        events.append(completedEvent(response))
        return CoordinationOutcome(response: response, kept: keptList, approvals: approvalList, plans: planList,
                                   events: events)
    }


    /// The next `count` identifiers of `ids`, in order.
    static func draw(_ count: Int, from ids: inout some IDGenerator) -> [String] {
        var drawn: [String] = []
        drawn.reserveCapacity(count)
        for _ in 0..<count { drawn.append(ids.next()) }
        return drawn
    }

    /// Where each kept recommendation's outputs go, and each discard's slot in request order
    /// (by node; -1 for a node not discarded).
    func layOut() -> (layout: KeptLayout, discardSlot: [Int], discardCount: Int) {
        let policy = configuration.policy
        let keptCount = executionOrder.count
        var layout = KeptLayout()
        layout.routes.reserveCapacity(keptCount)
        layout.idStart = [Int](repeating: 0, count: keptCount + 1)
        layout.approvalStart = [Int](repeating: 0, count: keptCount + 1)
        layout.planStart = [Int](repeating: 0, count: keptCount + 1)
        layout.eventStart = [Int](repeating: 0, count: keptCount + 1)
        let notify = policy.mediumPolicy == .notify && request.autoApprove
        for (k, i) in executionOrder.enumerated() {
            let route = policy.route(risk: nodeRisk[i], autoApprove: request.autoApprove)
            layout.routes.append(route)
            var (ids, approvals, plans, events) = (1, 1, 0, 1)
            if case .needsApproval = route {} else {
                (ids, approvals, plans) = (PlanBuilder.stepCount(for: actionName(i)) + 1, 0, 1)
                if nodeRisk[i] == .medium && notify { events = 2 }
                layout.autoApproved += 1
            }
            layout.idStart[k + 1] = layout.idStart[k] + ids
            layout.approvalStart[k + 1] = layout.approvalStart[k] + approvals
            layout.planStart[k + 1] = layout.planStart[k] + plans
            layout.eventStart[k + 1] = layout.eventStart[k] + events
        }
        // Places in request order: kept recommendations (by execution position) and discards (by node).
        var keptPosition = [Int](repeating: -1, count: n)
        for (k, i) in executionOrder.enumerated() { keptPosition[i] = k }
        layout.byRequestOrder.reserveCapacity(keptCount)
        var discardSlot = [Int](repeating: -1, count: n)
        var discardCount = 0
        for index in 0..<n {
            let i = position[index]
            if state[i] == .discarded {
                discardSlot[i] = discardCount
                discardCount += 1
            } else if keptPosition[i] >= 0 {
                layout.byRequestOrder.append(keptPosition[i])
            }
        }
        return (layout, discardSlot, discardCount)
    }

    /// The response, its lists already built.
    func makeResponse(id: String, layout: KeptLayout, conflicts: [Conflict], kept: [Recommendation], approvals: [Approval],
                      plans: [ExecutionPlan], discarded: [DiscardedRecommendation]) -> CoordinationResponse {
        CoordinationResponse(
            id: id, totalRecommendations: n, conflictsDetected: max(ledger.detected, ledger.entries.count),
            conflictsResolved: max(ledger.detected, ledger.entries.count), recommendationsKept: executionOrder.count,
            approvalsRequired: approvals.count, autoApproved: layout.autoApproved, conflicts: conflicts,
            conflictsTruncated: ledger.truncated, recommendations: kept, approvals: approvals,
            executionPlans: plans, discarded: discarded, executionOrder: executionOrder.map { nodeID[$0] },
            createdAt: now)
    }

    /// `coordination.completed`, the last event of a coordination.
    func completedEvent(_ response: CoordinationResponse) -> DomainEvent {
        DomainEvent(type: .coordinationCompleted, customerID: request.customerID, data: [
            "response_id": .string(response.id),
            "total_recommendations": .number(Double(n)),
            "recommendations_kept": .number(Double(response.recommendationsKept)),
            "conflicts_detected": .number(Double(response.conflictsDetected)),
            "approvals_required": .number(Double(response.approvalsRequired)),
            "auto_approved": .number(Double(response.autoApproved)),
        ])
    }

    /// The kept recommendations at `range` of the execution order, with their status, and their
    /// approvals or plans with events.
    @inline(never)
    func makeKept(_ range: Range<Int>, layout: KeptLayout, ids: [String], kept: Slots<Recommendation>,
                  inRequestOrder: Slots<Recommendation>, approvals: Slots<Approval>, plans: Slots<ExecutionPlan>,
                  events: UnsafeMutablePointer<DomainEvent>) {
        let policy = configuration.policy
        let customer = request.customerID
        var cache = EventDataCache()
        // In request order, where the recommendations lie in memory in sequence.
        for slot in range {
            let k = layout.byRequestOrder[slot]
            var r = recs[inputIndex[executionOrder[k]]]
            var event = layout.eventStart[k]
            var replay = ReplayIDs(ids: ids, used: layout.idStart[k])
            switch layout.routes[k] {
            case .approvedAtOnce, .approvedWithNotice:
                r.status = .approved
                if r.riskLevel == .medium && policy.mediumPolicy == .notify && request.autoApprove {
                    (events + event).initialize(to: DomainEvent(type: .approvalApproved, customerID: customer, recommendationID: r.id,
                                                                data: ["policy": "notify", "risk_level": .string(r.riskLevel.rawValue)]))
                    event += 1
                }
                let plan = PlanBuilder.plan(for: r, now: now, ids: &replay)
                (events + event).initialize(to: PlanBuilder.createdEvent(plan, action: r.action, approvalID: nil, cache: &cache))
                plans.initialize(layout.planStart[k], consume plan)
            case .needsApproval(let required):
                r.status = .pendingApproval
                let (approval, requested) = policy.requestApproval(for: r, required: required, now: now, ids: &replay, cache: &cache)
                approvals.initialize(layout.approvalStart[k], consume approval)
                (events + event).initialize(to: requested)
            }
            precondition(replay.used == layout.idStart[k + 1], "identifiers drawn for a kept recommendation do not match their use")
            inRequestOrder.initialize(slot, copy r)
            kept.initialize(k, r)
        }
    }

    /// Discarded recommendations, at their place in request order, and their events.
    @inline(never)
    func makeDiscarded(_ nodes: Range<Int>, conflictIDs: [String], slot: [Int], into discarded: Slots<DiscardedRecommendation>,
                       events: UnsafeMutablePointer<DomainEvent>, record: CoordinationRecord) {
        let customer = request.customerID
        for i in nodes where state[i] == .discarded {
            let info = discards[i]
            var item = DiscardedRecommendation(id: nodeID[i], reason: info.reason)
            if info.entry >= 0 { item.conflictID = conflictIDs[info.entry] }
            if info.active >= 0 { item.activeID = id(info.active) }
            if info.related >= 0 { item.relatedID = id(info.related) }
            if info.relatedIsMissing { item.relatedID = ledger.missingIDs[ledger.entries[info.entry].extra] }
            if info.activeIsOwnID { item.activeID = nodeID[i] }
            discarded.initialize(slot[i], item)
            (events + slot[i]).initialize(to: DomainEvent(type: .recommendationDiscarded, customerID: customer,
                                                          recommendationID: nodeID[i], payload: .discarded(slot[i], record)))
        }
    }
}
