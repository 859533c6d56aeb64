import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Bursts from one customer", .sharesMachine)
    struct BurstTests {
        @Test("two daemons, a burst from five customers on few resources: each request answered once, no two conflicting recommendations kept")
        func burst() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            try h.waitUntilReady()
            let customers = 5
            let count = 600
            let actions = ["scale_up", "scale_down", "terminate", "add_capacity"]
            var messages: [String] = []
            for n in 0..<count {
                let resources = n % 7 == 0 ? [] : ["r-\(n % 11)"]
                messages.append(Wire.coordinate("b-\(n)", customer: "burst-\(n % customers)", replyTo: "test:burst:\(n % 3)",
                                                [Wire.recommendation("rec-\(n)", action: actions[n % actions.count], resources: resources)]))
            }
            try h.pushAll(messages)
            var ids: [String] = []
            var replies: [String: String] = [:]
            let deadline = Date().addingTimeInterval(90)
            while ids.count < count, Date() < deadline {
                let reply = try h.redis.send(RedisCommand(arguments: ["BRPOP", "test:burst:0", "test:burst:1", "test:burst:2", "1"].map { Array($0.utf8) }))
                guard let parts = reply.array, parts.count == 2, let value = parts[1].bytes else { continue }
                let object = try Harness.object(value)
                #expect(object["ok"] as? Bool == true)
                ids.append(try #require(object["request_id"] as? String))
                replies[ids.last!] = String(decoding: value, as: UTF8.self)
            }
            #expect(ids.count == count)
            #expect(Set(ids) == Set((0..<count).map { "b-\($0)" }))
            // No reply twice: once nothing is queued or in flight, no message is left that could
            // be answered again (a reply is written in the script that acknowledges its message).
            try h.settle()
            for list in 0..<3 { #expect(try h.length("test:burst:\(list)") == 0) }
            try h.expectEveryDaemonWorked(total: count + 1)  // and the settling marker

            // What stayed active: never two that conflict (shared resource, or contradictory
            // actions on a shared resource or customer-wide).
            let contradict: Set<String> = ["scale_up|scale_down", "scale_up|terminate", "scale_down|add_capacity"]
            for c in 0..<customers {
                // Every record read in full: a missing or malformed one fails, never compares as empty.
                let records = try #require(try h.redis.send("HVALS", h.keys.active(customer: "burst-\(c)")).array)
                let recs = try records.map { record in
                    let bytes = try #require(record.bytes)
                    return try #require(try Harness.object(bytes)["recommendation"] as? [String: Any])
                }
                #expect(!recs.isEmpty)
                for i in recs.indices {
                    for j in recs.indices where j > i {
                        let a = recs[i], b = recs[j]
                        let ra = Set(try #require(a["affected_resources"] as? [String])), rb = Set(try #require(b["affected_resources"] as? [String]))
                        let aa = try #require(a["action"] as? String), ab = try #require(b["action"] as? String)
                        let shared = !ra.isDisjoint(with: rb)
                        let opposed = contradict.contains("\(aa)|\(ab)") || contradict.contains("\(ab)|\(aa)")
                        #expect(!shared, "\(a["id"] ?? "") and \(b["id"] ?? "") share a resource")
                        #expect(!(opposed && (ra.isEmpty || rb.isEmpty)), "\(a["id"] ?? "") and \(b["id"] ?? "") contradict")
                        if (shared || (opposed && (ra.isEmpty || rb.isEmpty))) {
                            // What each request was told, and where each record is indexed: the
                            // account that tells a missed read from a missed guard.
                            for rec in [a, b] {
                                let id = rec["id"] as? String ?? ""
                                let n = id.dropFirst(4)
                                print("burst diagnosis: reply to b-\(n): \(replies["b-\(n)"] ?? "none")")
                                let wide = try h.redis.send("SISMEMBER", h.keys.wideIndex(customer: "burst-\(c)"), id).integer ?? -1
                                let byAction = try h.redis.send("SISMEMBER", h.keys.actionIndex(customer: "burst-\(c)", action: rec["action"] as? String ?? ""), id).integer ?? -1
                                print("burst diagnosis: \(id) in wide \(wide), in its action's index \(byAction)")
                            }
                        }
                    }
                }
            }
        }

        @Test("two daemons: a batch whose customer-wide add_capacity sets the customer-wide version before its resourced terminate reads it, while the other daemon keeps a customer-wide scale_up: never both kept")
        func firstWriterOfABatchIsGuarded() throws {
            let h = try Harness()
            try h.startDaemon()
            try h.startDaemon()
            try h.waitUntilReady()
            // Blocks of 64 customers: first each customer's add_capacity (customer-wide, which
            // sets the customer-wide version without reading it) and terminate (on a resource,
            // reading it), a batch of 128 for one worker; then the same customers'
            // customer-wide scale_ups, taken by another worker at the same moment.
            let blocks = 4, size = 64
            var messages: [String] = []
            for block in 0..<blocks {
                let customers = (0..<size).map { "first-\(block * size + $0)" }
                for c in customers {
                    messages.append(Wire.coordinate("a-\(c)", customer: c, replyTo: "test:first",
                                                    [Wire.recommendation("add-\(c)", action: "add_capacity")]))
                    messages.append(Wire.coordinate("t-\(c)", customer: c, replyTo: "test:first",
                                                    [Wire.recommendation("term-\(c)", action: "terminate", resources: ["r-1"])]))
                }
                for c in customers {
                    messages.append(Wire.coordinate("s-\(c)", customer: c, replyTo: "test:first",
                                                    [Wire.recommendation("up-\(c)", action: "scale_up")]))
                }
            }
            try h.pushAll(messages)
            try h.wait("every request answered", timeout: 90) { try h.length("test:first") == messages.count }
            try h.expectEveryDaemonWorked(total: messages.count)
            var both: [String] = []
            for n in 0..<(blocks * size) {
                let active = try #require(try h.redis.send("HKEYS", h.keys.active(customer: "first-\(n)")).array).compactMap(\.string)
                #expect(!active.isEmpty, "first-\(n) keeps something")
                if active.contains("up-first-\(n)") && active.contains("term-first-\(n)") { both.append("first-\(n)") }
            }
            #expect(both.isEmpty, "a customer-wide scale_up kept beside a terminate for \(both.count) customers: \(both.prefix(5))")
        }
    }
}
