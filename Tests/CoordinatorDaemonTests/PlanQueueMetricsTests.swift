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
    }
}
