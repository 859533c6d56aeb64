import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// PROTOCOL.md 7 and 9 (v3): plans queued for an executor are counted, so a queue that
    /// grows is an alert rather than a silent pile of keys.
    @Suite("Queued plans in coordinatord_plans{status=\"queued\"}", .sharesMachine)
    struct PlanQueueMetricsTests {
        @Test("execute_now plans past --max-concurrent-plans show as queued, and the gauge falls to 0 once they ran")
        func queuedPlansCounted() throws {
            let h = try Harness()
            let port = try h.metricsPort()
            try h.startDaemon {
                $0.metricsPort = port
                $0.maxConcurrentPlans = 1
                $0.simSpeed = 1
            }
            let url = "http://127.0.0.1:\(port)/metrics"
            var answer = try PrometheusScrape.scrape(url)
            #expect(answer.value("coordinatord_plans", ["status": "queued"]) == 0)
            for n in 0..<4 {
                try h.push(Wire.coordinate("queued-\(n)", customer: "cust-q", replyTo: "test:queued", executeNow: true,
                                           [Wire.recommendation("q\(n)", action: "migrate_to_spot", resources: ["i-q\(n)"])]))
            }
            // One runs, the others wait on the ready list for the one executor slot.
            try h.wait("queued plans to show in the gauge") {
                answer = try PrometheusScrape.scrape(url)
                return (answer.value("coordinatord_plans", ["status": "queued"]) ?? 0) >= 2
            }
            try h.wait("every plan to complete", timeout: 60) {
                try h.events().filter { $0["type"] as? String == "plan.completed" }.count == 4
            }
            try h.wait("the queued gauge to fall to 0") {
                answer = try PrometheusScrape.scrape(url)
                return answer.value("coordinatord_plans", ["status": "queued"]) == 0
            }
        }

        @Test("past --plan-backlog queued plans, intake takes no request until the executor is down to three quarters; nothing is lost and the pause is counted")
        func intakeWaitsForTheExecutor() throws {
            let h = try Harness()
            let port = try h.metricsPort()
            let log = LogRecorder()
            try h.startDaemon(log: log, level: .debug) {
                $0.metricsPort = port
                $0.maxConcurrentPlans = 1
                $0.planWorkers = 1
                $0.planBacklog = 2
                $0.simSpeed = 1
            }
            func request(_ n: Int) -> String {
                Wire.coordinate("backlog-\(n)", customer: "cust-b", replyTo: "test:backlog", executeNow: true,
                                [Wire.recommendation("b\(n)", action: "migrate_to_spot", resources: ["i-b\(n)"])])
            }
            // One plan runs on the one executor slot, the next three wait on the ready list:
            // three is past the backlog of two.
            for n in 0..<4 {
                try h.push(request(n))
                _ = try #require(try h.redis.blockingPopRight("test:backlog", timeout: 10), "request \(n) answered")
            }
            func said(_ text: String) -> Bool { log.lines.contains { $0.message.hasPrefix(text) } }
            // Every request worker has seen the pause (one blocked in its pop takes what comes
            // until the pop's one-second timeout).
            let workers = h.configuration().workers
            try h.wait("every request worker to wait for the executor") {
                log.lines.filter { $0.message.hasPrefix("requests-") && $0.message.hasSuffix("takes nothing while the executor catches up") }.count >= workers
            }
            #expect(said("intake paused") && !said("intake resumed"))
            try h.push(request(4))
            // While paused (and not yet resumed) the request stays where the client put it.
            #expect(try h.length("coord:requests") == 1 || said("intake resumed"))
            let last = try #require(try h.redis.blockingPopRight("test:backlog", timeout: 60), "the request pushed while paused is answered")
            #expect(said("intake resumed"), "answered only after intake resumed")
            #expect(try Harness.object(last.1)["request_id"] as? String == "backlog-4")
            try h.wait("every plan to complete", timeout: 90) {
                try h.events().filter { $0["type"] as? String == "plan.completed" }.count == 5
            }
            let paused = try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics").value("coordinatord_intake_paused_seconds_total")
            #expect((paused ?? 0) > 0, "the pause is counted: \(paused ?? -1)")
        }
    }
}
