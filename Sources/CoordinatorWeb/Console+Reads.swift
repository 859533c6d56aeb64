import Coordination
import CoordinatorDaemon
import Foundation
import Operations
import RedisClient

/// The pages that only read: each renders on a Redis thread, from a bounded number of reads.
extension Console {
    func overview(_ redis: any StateRedis) throws -> String {
        let report = try StatusReport.read(redis, layout: layout)
        let now = report.now
        let pendingIDs = try redis.everyPlace(layout) { RedisCommand("ZRANGE", $0.pendingApprovals, 0, Limits.pendingForRisk / layout.places.count - 1) }
            .flatMap { ($0.array ?? []).compactMap(\.string) }
        let (byRisk, known) = try risks.count(pendingIDs, layout: layout, redis: redis)
        let held = report.partitions.map { "; \($0.held) of \($0.count) partitions held" } ?? ""
        var out = "<section><h2>Daemons <small>\(report.daemons.isEmpty ? "<span class=\"badge bad\">no live daemon</span>" : "\(report.daemons.count) live")\(held)</small></h2>"
        if report.partitions != nil, !report.daemons.isEmpty {
            out += "<div class=\"scroll\"><table id=\"daemons\"><thead><tr><th>Daemon</th><th class=\"num\">Partitions</th></tr></thead><tbody>"
            for daemon in report.daemons {
                out += "<tr><td>\(HTML.h(daemon["worker"]))</td><td class=\"num\">\(HTML.h(daemon["partitions"] ?? 0))</td></tr>"
            }
            out += "</tbody></table></div>"
        } else if !report.daemons.isEmpty {
            out += "<div class=\"scroll\"><table><thead><tr><th>Worker</th><th>PID</th><th>Version</th><th>Up</th><th class=\"num\">Processed</th><th class=\"num\">Dead</th><th>Last beat</th></tr></thead><tbody>"
            for daemon in report.daemons {
                let started = daemon.date("started_at").map { Timestamps.span(now.timeIntervalSince($0)) } ?? ""
                out += "<tr><td>\(HTML.h(daemon["worker"]))</td><td>\(HTML.h(daemon["pid"]))</td><td>\(HTML.h(daemon["version"]))</td><td>\(HTML.h(started))</td><td class=\"num\">\(HTML.h(daemon["processed"] ?? 0))</td><td class=\"num\">\(HTML.h(daemon["dead_lettered"] ?? 0))</td><td>\(HTML.time(daemon.date("beat_at"), now: now))</td></tr>"
            }
            out += "</tbody></table></div>"
        }
        out += "</section><section><h2>Queues</h2><div class=\"scroll\"><table><thead><tr><th>Queue</th><th class=\"num\">Waiting</th><th class=\"num\">In flight</th></tr></thead><tbody>"
        for queue in layout.isPartitioned ? StatusReport.partitionQueues : StatusReport.queues {
            out += "<tr><td>\(HTML.h(layout.isPartitioned ? queue : keys.queue(queue)))</td><td class=\"num\">\(report.depths[queue] ?? 0)</td><td class=\"num\">\(report.inflight[queue] ?? 0)</td></tr>"
        }
        out += "</tbody></table></div></section>"
        out += "<section class=\"cards\">"
        var risks = ""
        for risk in ["critical", "high", "medium", "low"] where byRisk[risk, default: 0] > 0 {
            risks += " \(HTML.badge(risk)) \(byRisk[risk]!)"
        }
        if known < pendingIDs.count { risks += " <small>(risk read for \(known) of \(pendingIDs.count) so far)</small>" }
        let next = report.nextApprovalExpiry.map { " <small>next expires \(HTML.time($0, now: now))</small>" } ?? ""
        out += "<a class=\"card\" href=\"/approvals\"><span class=\"label\">Pending approvals</span><strong id=\"pending-count\">\(report.pendingApprovals)</strong><span>\(risks)\(next)</span></a>"
        out += "<a class=\"card\" href=\"/plans\"><span class=\"label\">Running plans</span><strong id=\"running-count\">\(report.runningPlans)</strong><span>\(report.heldPlans) waiting to start</span></a>"
        out += "<a class=\"card\" href=\"/dead\"><span class=\"label\">Dead letters</span><strong id=\"dead-count\" class=\"\(report.deadLetters > 0 ? "bad" : "")\">\(report.deadLetters)</strong><span></span></a>"
        out += "</section>"
        return out
    }

    func approvals(_ redis: any StateRedis, customer: String?) throws -> String {
        if let customer, !Self.isIdentifier(customer) { throw OperationFailure("customer: not an identifier") }
        let pending = try PendingApprovals.read(redis, layout: layout, customer: customer, limit: Limits.approvals)
        guard !pending.approvals.isEmpty else {
            return "<p class=\"empty\" id=\"no-approvals\">No pending approvals\(customer.map { " for \(HTML.h($0))" } ?? "").</p>"
        }
        // The recommendations, for their titles and declared risk: one pipelined read.
        let records = try redis.calls(pending.approvals.map {
            StoredRecord.activeRecommendation(customer: $0.string("customer_id") ?? "", id: $0.string("recommendation_id") ?? "", layout: layout)
        })
        var out = "<div class=\"scroll\"><table id=\"approvals\"><thead><tr><th>Approval</th><th>Customer</th><th>Recommendation</th><th>Risk</th><th>Requested by</th><th>Expires</th></tr></thead><tbody>"
        for (approval, record) in zip(pending.approvals, records) {
            let id = approval.string("id") ?? ""
            let recommendation = jsonObject(record.bytes)?["recommendation"] as? [String: Any] ?? [:]
            out += "<tr data-approval=\"\(HTML.h(id))\"><td><a href=\"/approvals/\(HTML.url(id))\">\(HTML.h(String(id.prefix(8))))</a></td>"
            out += "<td>\(HTML.h(approval.string("customer_id") ?? ""))</td>"
            out += "<td><span class=\"title\">\(HTML.h(recommendation.string("title") ?? ""))</span><br><small>\(HTML.h(approval.string("recommendation_id") ?? "")) · \(HTML.h(recommendation.string("action") ?? ""))</small></td>"
            out += "<td>\(Self.riskCell(approval, recommendation))</td>"
            out += "<td>\(HTML.h(approval.string("requested_by") ?? ""))</td>"
            out += "<td>\(Self.countdown(approval.date("expires_at"), now: pending.now))</td></tr>"
        }
        out += "</tbody></table></div>"
        if pending.total > pending.approvals.count {
            out += "<p class=\"more\">… and \(pending.total - pending.approvals.count) more (the \(Limits.approvals) that expire soonest are shown).</p>"
        }
        return out
    }

    /// The risk the approval holds, and the declared one when the trust file's floor raised it.
    static func riskCell(_ approval: [String: Any], _ recommendation: [String: Any]) -> String {
        let risk = approval.string("risk_level") ?? "?"
        var out = HTML.badge(risk)
        let text = PendingApprovals.riskText(approval)
        if text != risk { out += " <small>\(HTML.h(String(text.dropFirst(risk.count + 1)))) approvals</small>" }
        if let declared = (recommendation["metadata"] as? [String: Any])?.string("declared_risk_level"), declared != risk {
            out += "<br><small class=\"raised\">declared \(HTML.h(declared)), raised by the risk floor</small>"
        }
        return out
    }

    static func countdown(_ date: Date?, now: Date) -> String {
        guard let date else { return "" }
        let ms = Int(date.timeIntervalSince1970 * 1000), skew = Int(now.timeIntervalSince1970 * 1000) - Int(Date().timeIntervalSince1970 * 1000)
        return "<span class=\"countdown\" data-until=\"\(ms - skew)\">\(HTML.h(Timestamps.relative(date, now: now)))</span>"
    }

    func approval(_ redis: any StateRedis, id: String, context: ConsoleContext) throws -> String {
        guard let approval = try StoredRecord.approval(id, layout: layout, redis: redis) else {
            throw OperationFailure("No approval \(id) (decided approvals are kept for --retention).")
        }
        let now = redis.clock()
        let customer = approval.string("customer_id") ?? ""
        let recommendationID = approval.string("recommendation_id") ?? ""
        let record = try StoredRecord.recommendation(customer: customer, id: recommendationID, layout: layout, redis: redis) ?? [:]
        let recommendation = record["recommendation"] as? [String: Any] ?? [:]
        let status = approval.string("status") ?? "?"
        var out = "<article id=\"approval\" data-approval=\"\(HTML.h(id))\" data-customer=\"\(HTML.h(customer))\" data-status=\"\(HTML.h(status))\">"
        out += "<h2 class=\"title\" id=\"rec-title\">\(HTML.h(recommendation.string("title") ?? recommendationID))</h2>"
        out += "<dl class=\"facts\">"
        out += "<dt>Status</dt><dd id=\"approval-status\">\(HTML.badge(status))</dd>"
        out += "<dt>Risk</dt><dd>\(Self.riskCell(approval, recommendation))</dd>"
        out += "<dt>Customer</dt><dd>\(HTML.h(customer))</dd>"
        out += "<dt>Recommendation</dt><dd>\(HTML.h(recommendationID)) · \(HTML.h(recommendation.string("type") ?? "")) · action <code>\(HTML.h(recommendation.string("action") ?? ""))</code></dd>"
        out += "<dt>Requested by</dt><dd>\(HTML.h(approval.string("requested_by") ?? "")) \(HTML.time(approval.date("requested_at"), now: now))</dd>"
        if status == "pending" { out += "<dt>Expires</dt><dd>\(Self.countdown(approval.date("expires_at"), now: now))</dd>" }
        let votes = (approval["approvers"] as? [[String: Any]]) ?? []
        if !votes.isEmpty || (approval.int("required_approvals") ?? 1) > 1 {
            out += "<dt>Approvals</dt><dd>\(votes.count) of \(approval.int("required_approvals") ?? 1): \(votes.map { HTML.h($0.string("user_id") ?? "") }.joined(separator: ", "))</dd>"
        }
        if let by = approval.string("approved_by") { out += "<dt>Approved by</dt><dd>\(HTML.h(by)) \(HTML.time(approval.date("approved_at"), now: now))</dd>" }
        if let by = approval.string("rejected_by") {
            out += "<dt>Rejected by</dt><dd>\(HTML.h(by)) \(HTML.time(approval.date("rejected_at"), now: now)): \(HTML.h(approval.string("rejection_reason") ?? ""))</dd>"
        }
        if let plan = record.string("plan_id") { out += "<dt>Plan</dt><dd><a id=\"plan-link\" href=\"/plans/\(HTML.url(plan))\">\(HTML.h(plan))</a></dd>" }
        if let savings = recommendation["estimated_savings"] { out += "<dt>Estimated savings</dt><dd>\(HTML.h(savings))</dd>" }
        if let impact = recommendation.string("estimated_impact"), !impact.isEmpty { out += "<dt>Impact</dt><dd>\(HTML.h(impact))</dd>" }
        out += "</dl>"
        if let description = recommendation.string("description"), !description.isEmpty {
            out += "<h3>Description</h3><p class=\"description\">\(HTML.h(description))</p>"
        }
        let resources = (recommendation["affected_resources"] as? [String]) ?? []
        if !resources.isEmpty {
            out += "<h3>Affected resources (\(resources.count))</h3><ul class=\"resources\">"
            out += resources.prefix(Limits.resourcesShown).map { "<li><code>\(HTML.h($0))</code></li>" }.joined()
            if resources.count > Limits.resourcesShown { out += "<li>… \(resources.count - Limits.resourcesShown) more</li>" }
            out += "</ul>"
        }
        out += "<h3>Conflicts</h3>"
        if let requested = approval.date("requested_at") {
            let conflicts = try RecommendationConflicts.read(redis, stream: layout.of(customer: customer).eventStream, customer: customer,
                                                            recommendation: recommendationID, since: requested, limit: Limits.conflictScan)
            out += Self.conflictsSection(conflicts, customer: customer, now: now)
        } else {
            out += "<p class=\"note\">The approval has no request time, so its conflicts were not looked up.</p>"
        }
        let dependencies = (recommendation["dependencies"] as? [String]) ?? []
        out += "<h3>Dependencies</h3><p id=\"dependencies\">"
        out += dependencies.isEmpty ? "Depends on no other recommendation." : "Runs after: \(dependencies.map { HTML.h($0) }.joined(separator: ", ")) (it starts when their plans complete, and is cancelled if one fails)."
        out += "</p>"
        out += "<h3>What the plan will do</h3>" + Self.planPreview(recommendation)
        if let parameters = recommendation["parameters"] as? [String: Any], !parameters.isEmpty {
            out += "<details><summary>Parameters</summary><pre>\(HTML.json(parameters))</pre></details>"
        }
        out += "</article>"
        out += Pages.decisionPanel(configuration, pending: status == "pending")
        return out
    }

    /// The conflicts a recommendation was part of: in the coordination that admitted it, and
    /// later ones that it, being active, made discard another.
    static func conflictsSection(_ conflicts: RecommendationConflicts, customer: String, now: Date) -> String {
        var out = ""
        if conflicts.entries.isEmpty {
            out += "<p id=\"no-conflicts\">No conflict names it in the \(conflicts.searched) events from its request on.</p>"
        } else {
            out += "<div class=\"scroll\"><table id=\"conflicts\"><thead><tr><th>Conflict</th><th>Type</th><th>With</th><th>Resolution</th><th>When</th></tr></thead><tbody>"
            for entry in conflicts.entries {
                let others = entry.others.map { other in
                    "<code>\(HTML.h(other))</code>" + (entry.discarded[other].map { " <span class=\"badge bad\">discarded: \(HTML.h($0))</span>" } ?? "")
                }.joined(separator: ", ")
                out += "<tr data-conflict=\"\(HTML.h(entry.conflictID))\"><td>\(HTML.h(String(entry.conflictID.prefix(8))))</td><td>\(HTML.badge(entry.type))</td>"
                out += "<td>\(others)</td><td>\(HTML.h(entry.resolution))</td><td>\(HTML.time(entry.at, now: now))</td></tr>"
            }
            out += "</tbody></table></div>"
        }
        if !conflicts.complete {
            out += "<p class=\"note\">Only the first \(conflicts.searched) events after its request were searched (to \(HTML.h(conflicts.to ?? "?"))); later conflicts are in the <a href=\"/events?customer=\(HTML.url(customer))&amp;type=conflict.resolved\">event stream</a>.</p>"
        } else {
            out += "<p class=\"note\">While it is active, a new recommendation that conflicts with it is discarded, and shows here.</p>"
        }
        return out
    }

    /// The steps `PlanBuilder` makes of this recommendation (what the daemon will make of it).
    static func planPreview(_ recommendation: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: recommendation),
              let decoded = try? WireJSON.decoder().decode(Recommendation.self, from: data) else {
            return "<p>(the stored recommendation could not be read)</p>"
        }
        var ids = SequentialIDGenerator()
        let plan = PlanBuilder.plan(for: decoded, now: Date(), ids: &ids)
        var out = "<ol class=\"steps\">"
        for step in plan.steps {
            out += "<li><code>\(HTML.h(step.action))</code> by \(HTML.h(step.agentID))\(step.reversible ? " · can be rolled back" : "")\(step.critical ? "" : " · non-critical")</li>"
        }
        return out + "</ol>"
    }

    func plans(_ redis: any StateRedis) throws -> String {
        let places = layout.places
        // Per place: its running and held plans by score, and its latest events.
        let replies = try redis.calls(places.flatMap { keys in [
            RedisCommand("ZRANGE", keys.runningPlans, 0, Limits.plans - 1, "WITHSCORES"),
            RedisCommand("ZRANGE", keys.heldPlans, 0, Limits.plans - 1, "WITHSCORES"),
            RedisCommand("XREVRANGE", keys.eventStream, "+", "-", "COUNT", max(8, Limits.recentEvents / places.count)),
        ] })
        func soonest(_ index: Int) -> [String] {
            var scored: [(id: String, score: Double, order: Int)] = []
            for k in places.indices {
                let fields = (replies[3 * k + index].array ?? []).compactMap(\.string)
                scored += stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], Double(fields[$0 + 1]) ?? 0, scored.count + $0) }
            }
            return scored.sorted { ($0.score, $0.order) < ($1.score, $1.order) }.prefix(Limits.plans).map(\.id)
        }
        let running = soonest(0), held = soonest(1)
        var events = places.indices.flatMap { StreamEvent.entries(replies[3 * $0 + 2]) }
        if places.count > 1 { events = events.enumerated().sorted { ($0.element.event.string("at") ?? "", -$0.offset) > ($1.element.event.string("at") ?? "", -$1.offset) }.map(\.element) }
        var recent: [String] = []
        var seen = Set(running + held)
        for entry in events {
            if let plan = entry.event.string("plan_id"), (entry.event.string("type") ?? "").hasPrefix("plan."), seen.insert(plan).inserted, Self.isIdentifier(plan) {
                recent.append(plan)
            }
        }
        let ids = running + held + recent.prefix(Limits.plans)
        let stored = try ids.isEmpty ? [] : StoredRecord.plans(ids, layout: layout, redis: redis)
        let now = redis.clock()
        var out = ""
        var offset = 0
        for (title, group) in [("Running", running), ("Waiting to start", held), ("Recent", Array(recent.prefix(Limits.plans)))] {
            let rows = stored[offset..<(offset + group.count)]
            offset += group.count
            out += "<section><h2>\(title) <small>\(group.count)</small></h2>"
            guard !group.isEmpty else {
                out += "<p class=\"empty\">None.</p></section>"
                continue
            }
            out += "<div class=\"scroll\"><table class=\"plans\"><thead><tr><th>Plan</th><th>Customer</th><th>Recommendation</th><th>Status</th><th>Steps</th><th>Started</th></tr></thead><tbody>"
            for (id, record) in zip(group, rows) {
                let plan = record ?? [:]
                let steps = plan["steps"] as? [[String: Any]] ?? []
                let done = steps.filter { $0.string("status") == "completed" }.count
                let status = plan.string("status") ?? "gone"
                out += "<tr data-plan=\"\(HTML.h(id))\"><td><a href=\"/plans/\(HTML.url(id))\">\(HTML.h(String(id.prefix(8))))</a></td><td>\(HTML.h(plan.string("customer_id") ?? ""))</td><td>\(HTML.h(plan.string("recommendation_id") ?? ""))</td><td>\(HTML.badge(status))</td><td>\(done)/\(steps.count)</td><td>\(HTML.time(plan.date("started_at"), now: now))</td></tr>"
            }
            out += "</tbody></table></div></section>"
        }
        return out
    }

    func plan(_ redis: any StateRedis, id: String) throws -> String {
        guard let plan = try StoredRecord.plan(id, layout: layout, redis: redis) else {
            throw OperationFailure("No plan \(id) (finished plans are kept for --retention).")
        }
        let now = redis.clock()
        let status = plan.string("status") ?? "?"
        var out = "<article id=\"plan\" data-plan=\"\(HTML.h(id))\" data-status=\"\(HTML.h(status))\"><dl class=\"facts\">"
        out += "<dt>Plan</dt><dd>\(HTML.h(id))</dd><dt>Status</dt><dd id=\"plan-status\">\(HTML.badge(status))</dd>"
        out += "<dt>Recommendation</dt><dd>\(HTML.h(plan.string("recommendation_id") ?? "")) of \(HTML.h(plan.string("customer_id") ?? ""))</dd>"
        out += "<dt>Created</dt><dd>\(HTML.time(plan.date("created_at"), now: now))</dd>"
        if let started = plan.date("started_at") { out += "<dt>Started</dt><dd>\(HTML.time(started, now: now))</dd>" }
        if let ended = plan.date("completed_at") ?? plan.date("rolled_back_at") { out += "<dt>Ended</dt><dd>\(HTML.time(ended, now: now))</dd>" }
        if let total = plan.int("total_duration_ms"), total > 0 { out += "<dt>Took</dt><dd>\(HTML.h(Timestamps.duration(ms: total)))</dd>" }
        if let reason = plan.string("rollback_reason") { out += "<dt>Rolled back</dt><dd class=\"bad\">\(HTML.h(reason))</dd>" }
        if let reason = plan.string("cancel_reason") { out += "<dt>Cancelled</dt><dd>\(HTML.h(reason))</dd>" }
        out += "</dl><div class=\"scroll\"><table id=\"steps\"><thead><tr><th>#</th><th>Action</th><th>Agent</th><th>Status</th><th class=\"num\">Took</th><th>Error</th></tr></thead><tbody>"
        for (index, step) in ((plan["steps"] as? [[String: Any]]) ?? []).enumerated() {
            var error = step.string("error") ?? ""
            if let rollback = step.string("rollback_error") { error += (error.isEmpty ? "" : "; ") + "rollback: \(rollback)" }
            let took = step.int("duration_ms").map { step["started_at"] == nil ? "" : Timestamps.duration(ms: $0) } ?? ""
            let stepStatus = step.string("status") ?? ""
            out += "<tr><td>\(index + 1)</td><td><code>\(HTML.h(step.string("action") ?? ""))</code></td><td>\(HTML.h(step.string("agent_id") ?? ""))</td><td>\(HTML.badge(stepStatus))</td><td class=\"num\">\(HTML.h(took))</td><td class=\"bad\">\(HTML.h(error))</td></tr>"
        }
        out += "</tbody></table></div></article>"
        return out
    }

    func deadList(_ redis: any StateRedis) throws -> String {
        let newest = try DeadLetters.newest(redis, layout: layout, limit: Limits.deadLetters)
        guard !newest.entries.isEmpty else { return "<p class=\"empty\" id=\"no-dead\">No dead letters.</p>" }
        let now = redis.clock()
        var out = ""
        if deadLetterActions { out += "<p><a class=\"button danger\" href=\"/dead/purge\">Purge all \(newest.total)…</a></p>" }
        out += "<div class=\"scroll\"><table id=\"dead\"><thead><tr><th class=\"num\">N</th><th>Age</th><th>Queue</th><th>Code</th><th class=\"num\">Bytes</th><th>Error</th></tr></thead><tbody>"
        for (n, bytes) in newest.entries.reversed() {
            let entry = jsonObject(bytes) ?? [:]
            let letter = DeadLetter(entry, keys: n.keys(layout))
            out += "<tr data-dead=\"\(n)\"><td class=\"num\"><a href=\"/dead/\(n)\">\(n)</a></td><td>\(HTML.time(entry.date("at"), now: now))</td><td>\(HTML.h(letter.queueName))</td><td>\(HTML.badge(letter.code))</td><td class=\"num\">\(letter.size.map { "\($0)\(letter.truncated ? "+" : "")" } ?? "?")</td><td class=\"clip\">\(HTML.h(String(letter.message.prefix(300))))</td></tr>"
        }
        out += "</tbody></table></div>"
        let older = newest.total - newest.entries.count
        if older > 0 { out += "<p class=\"more\">… \(older) older (the newest \(Limits.deadLetters) are shown; newest first).</p>" }
        return out
    }

    func deadShow(_ redis: any StateRedis, n: DeadLetterAddress) throws -> String {
        guard let bytes = try DeadLetters.entry(n, layout: layout, redis: redis) else {
            throw OperationFailure("No dead letter \(n) (the list has \(try redis.call(RedisCommand("LLEN", n.list(layout))).integer ?? 0)).")
        }
        guard let entry = jsonObject(bytes) else {
            return "<p class=\"error\">Dead letter \(n) is not JSON:</p><pre>\(HTML.h(DisplayText.escaped(bytes: Array(bytes.prefix(4096)))))</pre>"
        }
        let letter = DeadLetter(entry, keys: n.keys(layout))
        let now = redis.clock()
        var out = "<dl class=\"facts\" id=\"dead-letter\"><dt>Queue</dt><dd>\(HTML.h(entry.string("queue") ?? "?"))</dd>"
        out += "<dt>At</dt><dd>\(HTML.time(entry.date("at"), now: now))</dd>"
        out += "<dt>Error</dt><dd>\(HTML.badge(letter.code)) <span id=\"dead-message\">\(HTML.h(letter.message))</span></dd>"
        if let attempts = entry.int("attempts") { out += "<dt>Attempts</dt><dd>\(attempts)</dd>" }
        out += "<dt>Bytes</dt><dd>\(letter.size.map(String.init) ?? "?")</dd>"
        if letter.truncated {
            out += "<dt>Truncated</dt><dd>only the first \(letter.keptBytes) bytes were kept (sha256 \(HTML.h(entry.string("raw_sha256") ?? "?")))</dd>"
        }
        out += "</dl>"
        if let (note, text) = letter.shownRaw {
            out += "<h3 id=\"raw-note\">\(HTML.h(note))</h3><pre id=\"raw\">\(HTML.h(text))</pre>"
            if let base64 = entry.string("raw_base64") {
                out += "<details><summary>raw_base64 as stored</summary><pre id=\"raw-base64\">\(HTML.h(String(base64.prefix(100_000))))</pre></details>"
            }
        }
        if deadLetterActions {
            out += "<p class=\"actions\"><a class=\"button\" id=\"requeue\" href=\"/dead/\(n)/requeue\">Requeue…</a> <a class=\"button danger\" href=\"/dead/purge\">Purge all…</a></p>"
        } else {
            out += "<p class=\"note\">\(Pages.deadActionsNote(configuration))</p>"
        }
        return out
    }
}
