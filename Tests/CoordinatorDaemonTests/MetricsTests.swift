import CoordinatorDaemon
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Prometheus metrics over a real Redis", .sharesMachine)
    struct MetricsTests {
        private func startDaemon(_ h: Harness, _ tweak: (inout DaemonConfiguration) -> Void = { _ in }) throws -> (daemon: Daemon, url: String) {
            let port = try h.metricsPort()
            let daemon = try h.startDaemon {
                $0.metricsPort = port
                tweak(&$0)
            }
            return (daemon, "http://127.0.0.1:\(port)/metrics")
        }

        @Test("every family and labelled series exists from the start; counters at 0; up is 1")
        func familiesAtStart() throws {
            let h = try Harness()
            let (_, url) = try startDaemon(h)
            var answer = try PrometheusScrape.scrape(url)
            try h.wait("coordinatord_up to be 1") {
                answer = try PrometheusScrape.scrape(url)
                return answer.value("coordinatord_up") == 1
            }
            #expect(answer.status == 200)
            for kind in ["coordinate", "execute_plan", "get_plan", "get_approval", "list_approvals", "unknown"] {
                for outcome in ["ok", "error", "dead"] {
                    #expect(answer.value("coordinatord_messages_total", ["queue": "requests", "kind": kind, "outcome": outcome]) == 0)
                }
            }
            #expect(answer.value("coordinatord_messages_total", ["queue": "approvals", "kind": "decision", "outcome": "ok"]) == 0)
            for code in ["invalid_json", "invalid_request", "too_large", "poison", "reply_undeliverable", "forbidden"] {
                #expect(answer.value("coordinatord_dead_letters_total", ["code": code]) == 0)
            }
            for status in ["completed", "failed", "rolled_back", "cancelled"] {
                #expect(answer.value("coordinatord_plans_finished_total", ["status": status]) == 0)
            }
            for risk in ["low", "medium", "high", "critical"] {
                #expect(answer.value("coordinatord_approvals_pending", ["risk": risk]) == 0)
            }
            #expect(answer.value("coordinatord_plans", ["status": "running"]) == 0)
            #expect(answer.value("coordinatord_plans", ["status": "waiting"]) == 0)
            #expect(answer.value("coordinatord_redis_errors_total") == 0)
            #expect(answer.value("coordinatord_queue_depth", ["queue": "requests"]) == 0)
            #expect(answer.value("coordinatord_inflight", ["queue": "requests"]) == 0)
            #expect(answer.all("coordinatord_request_duration_seconds_bucket").count >= 8 * 14)
        }

        @Test("after 100 coordinate requests the ok counter grew by at least 100, and the histogram counted them")
        func countersMove() throws {
            let h = try Harness()
            let (_, url) = try startDaemon(h)
            let before = try PrometheusScrape.scrape(url)
            let labels = ["queue": "requests", "kind": "coordinate", "outcome": "ok"]
            let okBefore = try #require(before.value("coordinatord_messages_total", labels))
            let countBefore = before.value("coordinatord_request_duration_seconds_count", ["kind": "coordinate"]) ?? -1
            for i in 0..<100 {
                try h.push(Wire.coordinate("m-\(i)", customer: "cust-\(i % 7)", replyTo: "test:metrics",
                                           [Wire.recommendation("rec-\(i)", resources: ["r-\(i)"])]))
            }
            for _ in 0..<100 { _ = try h.reply(on: "test:metrics") }
            try h.push("not json at all")
            try h.push(#"{"kind":"get_plan","plan_id":"nope","reply_to":"test:metrics"}"#)
            _ = try h.reply(on: "test:metrics")
            var after = before
            try h.wait("the dead letter to be counted") {
                after = try PrometheusScrape.scrape(url)
                return after.value("coordinatord_dead_letters_total", ["code": "invalid_json"]) == 1
            }
            let okAfter = try #require(after.value("coordinatord_messages_total", labels))
            #expect(okAfter - okBefore >= 100)
            #expect(after.value("coordinatord_request_duration_seconds_count", ["kind": "coordinate"])! - countBefore >= 100)
            #expect(after.value("coordinatord_messages_total", ["queue": "requests", "kind": "unknown", "outcome": "dead"]) == 1)
            #expect(after.value("coordinatord_messages_total", ["queue": "requests", "kind": "get_plan", "outcome": "error"]) == 1)
            // Buckets are cumulative: the +Inf bucket holds every observation.
            #expect(after.value("coordinatord_request_duration_seconds_bucket", ["kind": "coordinate", "le": "+Inf"])
                    == after.value("coordinatord_request_duration_seconds_count", ["kind": "coordinate"]))
        }

        @Test("gauges match the keys they describe: LLEN of queues and in-flight lists, pending approvals by risk")
        func gaugesMatchRedis() throws {
            let h = try Harness()
            let (daemon, url) = try startDaemon(h)
            // Nobody consumes steps:results under the simulated executor; the executor's own
            // in-flight list is only looked at when it starts.
            for i in 0..<7 { try h.push("{\"n\":\(i)}", to: "coord:steps:results") }
            let inflight = h.keys.inflight(worker: daemon.workerID, queue: "steps:results:0")
            try h.wait("the executor to have started") {
                try h.redis.send("EXISTS", h.keys.worker(daemon.workerID)).integer == 1
            }
            // Every loop idle (the executor blocked on the ready list): it has started, and
            // looked at its in-flight list, before the test fills that list.
            try h.waitUntilReady()
            for i in 0..<3 { try h.push("{\"held\":\(i)}", to: inflight) }
            try h.push(Wire.coordinate("g-1", replyTo: "test:g", autoApprove: false, [
                Wire.recommendation("rec-h", action: "scale_up", risk: "high", resources: ["a"]),
                Wire.recommendation("rec-m1", action: "scale_up", risk: "medium", resources: ["b"]),
                Wire.recommendation("rec-m2", action: "scale_up", risk: "medium", resources: ["c"]),
            ]))
            _ = try h.reply(on: "test:g")
            try h.push("garbage")

            var answer = try PrometheusScrape.scrape(url)
            try h.wait("the sampler to read the new state", timeout: 20) {
                answer = try PrometheusScrape.scrape(url)
                return answer.value("coordinatord_approvals_pending", ["risk": "medium"]) == 2
                    && answer.value("coordinatord_queue_depth", ["queue": "dead"]) == 1
                    && answer.value("coordinatord_inflight", ["queue": "steps:results"]) == 3
            }
            #expect(answer.value("coordinatord_queue_depth", ["queue": "steps:results"]) == Double(try h.length("coord:steps:results")))
            #expect(answer.value("coordinatord_queue_depth", ["queue": "dead"]) == Double(try h.length(h.keys.dead)))
            #expect(answer.value("coordinatord_inflight", ["queue": "steps:results"]) == Double(try h.length(inflight)))
            #expect(answer.value("coordinatord_approvals_pending", ["risk": "high"]) == 1)
            #expect(answer.value("coordinatord_approvals_pending", ["risk": "low"]) == 0)
            let pending = Double(try h.redis.send("ZCARD", h.keys.pendingApprovals).integer ?? -1)
            #expect(answer.all("coordinatord_approvals_pending").map(\.value).reduce(0, +) == pending)
            #expect(answer.value("coordinatord_approvals_expiring_soon") == 0)
            #expect(answer.value("coordinatord_up") == 1)
        }

        @Test("a poison message handed back by recovery is counted under dead_letters_total{code=\"poison\"}")
        func poisonCounted() throws {
            let h = try Harness()
            // A lapsed worker (no heartbeat) left a message in flight; it was delivered once already.
            let inflight = h.keys.inflight(worker: "gone-1-x", queue: "requests:0")
            _ = try h.redis.send("SADD", h.keys.workerIndex, "gone-1-x")
            _ = try h.redis.send("HSET", h.keys.inflightLists(worker: "gone-1-x"), inflight, h.keys.requests)
            try h.push("{\"kind\":\"get_plan\",\"plan_id\":\"p\"}", to: inflight)
            let (_, url) = try startDaemon(h) { $0.maxDeliveries = 1 }
            var answer = try PrometheusScrape.scrape(url)
            try h.wait("the poison dead letter to be counted") {
                answer = try PrometheusScrape.scrape(url)
                return answer.value("coordinatord_dead_letters_total", ["code": "poison"]) == 1
            }
            #expect(try h.deadLetters().first?["error"].flatMap { ($0 as? [String: Any])?["code"] as? String } == "poison")
        }

        @Test("only /metrics is served (404 elsewhere, 405 for POST); it binds 127.0.0.1 by default")
        func onlyMetricsOnLoopback() throws {
            let h = try Harness()
            let port = try h.metricsPort()
            let daemon = try h.startDaemon { $0.metricsPort = port }
            #expect(daemon.metricsPort == port)
            #expect(try PrometheusScrape.scrape("http://127.0.0.1:\(port)/").status == 404)
            #expect(try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metricsx").status == 404)
            #expect(try PrometheusScrape.scrape("http://127.0.0.1:\(port)/debug/vars").status == 404)
            #expect(try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics", method: "POST").status == 405)
            #expect(try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics?x=1").status == 200)
            #expect(PrometheusScrape.listeningAddresses(port: port) == ["127.0.0.1"])
        }

        @Test("the binary serves /metrics with --metrics-port and fails clearly on a taken port")
        func binary() throws {
            let h = try Harness()
            let port = try h.metricsPort()
            let cli = CLI(redisURL: h.server.url)
            let daemon = try cli.start(["run", "--metrics-port", "\(port)", "--sim-speed", "0"])
            defer { daemon.stop() }
            var answer = PrometheusScrape.Answer(status: 0, samples: [])
            try h.wait("the binary's endpoint to answer with up = 1") {
                answer = (try? PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics")) ?? answer
                return answer.value("coordinatord_up") == 1
            }
            try h.push(#"{"kind":"list_approvals","customer_id":"c","reply_to":"test:b"}"#)
            _ = try h.reply(on: "test:b")
            try h.wait("list_approvals to be counted") {
                answer = try PrometheusScrape.scrape("http://127.0.0.1:\(port)/metrics")
                return answer.value("coordinatord_messages_total", ["queue": "requests", "kind": "list_approvals", "outcome": "ok"]) == 1
            }
            // The same port again: the second daemon refuses to start, saying why.
            let second = try cli.run(["run", "--metrics-port", "\(port)"], timeout: 20)
            #expect(second.status != 0)
            #expect(second.err.contains("cannot serve metrics on 127.0.0.1:\(port)"), "\(second)")
        }
    }
}
