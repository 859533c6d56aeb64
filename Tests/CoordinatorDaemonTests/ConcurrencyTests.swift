import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// What the daemon exists for: many requests of one customer handled at once, by several
    /// loops and daemons, never both keeping conflicting recommendations.
    @Suite("One customer, many requests at once", .sharesMachine)
    struct ConcurrencyTests {
        @Test("two daemons, 200 conflicting requests of one customer on one resource: exactly one kept")
        func oneCustomerOneResource() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            try h.waitUntilReady()
            let count = 200
            let commands = (0..<count).map { n in
                RedisCommand("LPUSH", h.keys.requests, Wire.coordinate(
                    "burst-\(n)", customer: "burst", replyTo: "test:burst",
                    [Wire.recommendation("rec-\(n)", risk: "medium", resources: ["i-shared"])]))
            }
            _ = try h.redis.pipeline(commands)
            // Two daemons contended: each committed some of the 200 (their heartbeats' counts,
            // read before the replies are settled: the marker is one more request).
            try h.expectEveryDaemonWorked(total: count)
            let replies = try h.collectReplies(on: "test:burst", count: count)
            #expect(replies.count == count)
            #expect(Set(replies.compactMap { $0["request_id"] as? String }).count == count)
            let results = replies.compactMap { $0["result"] as? [String: Any] }
            #expect(results.count == count, "every request answered ok")
            let kept = results.reduce(0) { $0 + ($1["recommendations_kept"] as? Int ?? 0) }
            #expect(kept == 1)
            // The losers name the winner as the active recommendation they conflict with.
            let winner = try #require(results.first { ($0["recommendations_kept"] as? Int) == 1 }
                .flatMap { ($0["recommendations"] as? [[String: Any]])?.first?["id"] as? String })
            let discarded = results.flatMap { $0["discarded"] as? [[String: Any]] ?? [] }
            #expect(discarded.count == count - 1)
            #expect(discarded.allSatisfy { $0["reason"] as? String == "conflicts_with_active" })
            // PROTOCOL.md 2.2: a discarded one names the active recommendation it conflicts with.
            // The winner is the only one that was ever active (medium risk: it waits for approval,
            // nothing retires it), so every loser names it.
            let named = discarded.map { $0["active_id"] as? String ?? "nil" }
            let strangers = named.filter { $0 != winner }
            #expect(strangers.count == 0, "\(strangers.count) losers name \(Set(strangers).sorted().prefix(5)), not the winner \(winner)")
            #expect(try h.hlen(h.keys.active(customer: "burst")) == 1)
            #expect(try h.redis.send("HEXISTS", h.keys.active(customer: "burst"), winner).integer == 1)
            // One coordination.completed per request, matched by the reply's result id.
            let responseIDs = results.compactMap { $0["id"] as? String }
            let completed = try h.events().filter { $0["type"] as? String == "coordination.completed" }
                .compactMap { ($0["data"] as? [String: Any])?["response_id"] as? String }
            #expect(completed.count == count)
            #expect(completed.sorted() == responseIDs.sorted())
            #expect(try h.zcard(h.keys.pendingApprovals) == 1)
        }

        @Test("two requests of one customer in one batch: the first is kept, the second conflicts with it")
        func oneBatch() throws {
            let h = try Harness()
            // Pushed before any daemon runs, so one intake loop takes them in one batch.
            try h.push(Wire.coordinate("first", customer: "batch", [Wire.recommendation("a", resources: ["i-1"])]))
            try h.push(Wire.coordinate("second", customer: "batch", [Wire.recommendation("b", resources: ["i-1"], priority: 9)]))
            try h.push(Wire.coordinate("third", customer: "batch", [Wire.recommendation("c", resources: ["i-2"])]))
            try h.startDaemon { $0.workers = 1 }
            var byID: [String: [String: Any]] = [:]
            for reply in try h.collectReplies(on: "test:replies", count: 3) {
                byID[reply["request_id"] as? String ?? "?"] = reply["result"] as? [String: Any]
            }
            #expect(byID.count == 3)
            #expect(byID["first"]?["recommendations_kept"] as? Int == 1)
            #expect(byID["third"]?["recommendations_kept"] as? Int == 1)
            let lost = try #require((byID["second"]?["discarded"] as? [[String: Any]])?.first)
            #expect(lost["reason"] as? String == "conflicts_with_active")
            #expect(lost["active_id"] as? String == "a")
            let active = try h.redis.send("HKEYS", h.keys.active(customer: "batch")).array?.compactMap(\.string) ?? []
            #expect(active.sorted() == ["a", "c"])
        }

        @Test("two execute_plan at once on one plan: one ok, one conflict_state, one start")
        func concurrentExecute() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            let plans = 30
            var planIDs: [String] = []
            for n in 0..<plans {
                try h.push(Wire.coordinate("p-\(n)", customer: "exec-\(n)", replyTo: "test:plans",
                                           [Wire.recommendation("r", action: "migrate_to_spot", resources: ["i-1"])]))
                let result = try #require((try h.reply(on: "test:plans"))["result"] as? [String: Any])
                planIDs.append(try #require((result["execution_plans"] as? [[String: Any]])?.first?["id"] as? String))
            }
            for id in planIDs { #expect(try h.plan(id)?["status"] as? String == "pending") }
            let before = try h.processed(by: h.daemons, total: plans)
            try h.waitUntilReady()
            // Both messages of a plan in one push: the two daemons take them at the same moment.
            let commands = planIDs.flatMap { id in
                (0..<2).map { k in
                    RedisCommand("LPUSH", h.keys.requests, Wire.json(["kind": "execute_plan", "plan_id": id,
                                                                      "request_id": "\(id)-\(k)", "reply_to": "test:exec"]))
                }
            }
            _ = try h.redis.pipeline(commands)
            // Each daemon answered some of the execute_plan messages: both were in the race
            // (counted before the replies are settled: the marker is one more request).
            try h.expectEveryDaemonWorked(total: plans * 2, since: before)
            let replies = try h.collectReplies(on: "test:exec", count: plans * 2)
            #expect(replies.count == plans * 2)
            for id in planIDs {
                let mine = replies.filter { ($0["request_id"] as? String)?.hasPrefix("\(id)-") == true }
                #expect(mine.filter { $0["ok"] as? Bool == true }.count == 1, "\(id)")
                #expect(mine.filter { Harness.code($0) == "conflict_state" }.count == 1, "\(id)")
            }
            for id in planIDs { _ = try h.waitForPlan(id, status: "completed") }
            let started = try h.events().filter { $0["type"] as? String == "plan.started" }.compactMap { $0["plan_id"] as? String }
            #expect(started.sorted() == planIDs.sorted())
        }

        @Test("FIFO: one intake loop answers requests in the order they were pushed")
        func fifo() throws {
            let h = try Harness()
            for n in 0..<50 {
                try h.push(Wire.coordinate("fifo-\(n)", customer: "fifo-\(n)", replyTo: "test:fifo", [Wire.recommendation("r")]))
            }
            try h.startDaemon { $0.workers = 1 }
            let order = try h.collectReplies(on: "test:fifo", count: 50).compactMap { $0["request_id"] as? String }
            #expect(order == (0..<50).map { "fifo-\($0)" })
        }
    }
}
