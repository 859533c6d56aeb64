import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// A daemon that is alive but frozen (SIGSTOP: a paused VM or container, a swapped-out host)
    /// holds what it held: messages in flight, its customer's lock. The others must go on within
    /// the documented bounds: the lock lapses after 2 s (`SET NX PX 2000`), the in-flight lists
    /// are recovered once the heartbeat lapses (`--heartbeat-ttl`, swept every half of it).
    @Suite("A frozen daemon does not stall the others", .sharesMachine)
    struct FrozenDaemonTests {
        static let burst = 300

        /// A low-risk `coordinate` of `customer` on `resource`, answered on `replyTo`.
        func probe(_ id: String, customer: String, resource: String, replyTo: String) -> String {
            Wire.coordinate(id, customer: customer, replyTo: replyTo, [Wire.recommendation("\(id)-rec", resources: [resource])])
        }

        func inflight(of worker: String, _ h: Harness) throws -> Int {
            try h.scanKeys("\(h.keys.prefix):inflight:\(worker):*").reduce(0) { $0 + (try h.length($1)) }
        }

        @Test("frozen mid-burst with its customer's lock: the other daemon answers another customer and the same one; after SIGCONT all once")
        func frozenMidBurst() throws {
            let h = try Harness()
            let frozen = try h.launch(["run", "--sim-speed", "0", "--heartbeat-ttl", "2"])
            defer { Freeze.thaw(frozen) }
            let frozenID = try Freeze.workerID(of: frozen, h)
            let live = try h.startDaemon()
            try h.wait("the live daemon's heartbeat") { try h.redis.send("EXISTS", h.keys.worker(live.workerID)).integer == 1 }

            // Bursts of one customer ("hot") on one resource keep both daemons busy and contending.
            // Which daemon's loops take a burst is Redis's choice, so another burst follows
            // until the daemon to freeze is caught holding part of one.
            var pushed = 0
            func burst(_ size: Int) throws {
                _ = try h.redis.pipeline((pushed..<pushed + size).map { n in
                    RedisCommand("LPUSH", h.keys.requests, Wire.coordinate(
                        "hot-\(n)", customer: "hot", replyTo: "test:hot",
                        [Wire.recommendation("rec-\(n)", risk: "medium", resources: ["i-shared"])]))
                })
                pushed += size
            }
            try burst(Self.burst)
            // Frozen while it holds part of a burst in flight and not every reply has come.
            try h.wait("the daemon to be frozen with messages in flight", timeout: 60) {
                let answered = try h.length("test:hot")
                if answered >= pushed && pushed < Self.burst * 20 { try burst(Self.burst) }
                guard answered > 0 else { return false }
                try Freeze.stop(frozen, h)
                if try inflight(of: frozenID, h) > 0 && h.length("test:hot") < pushed { return true }
                Freeze.thaw(frozen)
                return false
            }
            #expect(try inflight(of: frozenID, h) > 0)
            // The customer's lock, as a daemon frozen between winning it and its commit leaves it
            // (RequestHandler.lockMs): NX, so a lock it really holds stays its own.
            _ = try h.redis.send("SET", h.keys.customerLock("hot"), "frozen-\(frozenID)", "NX", "PX", 2000)
            #expect(try h.redis.send("EXISTS", h.keys.customerLock("hot")).integer == 1)

            // The live daemon answers a new request of another customer and one of the locked
            // customer (on another resource, so it is kept), both ok, while the other is frozen.
            try h.push(probe("cold-probe", customer: "cold", resource: "i-1", replyTo: "test:probe"))
            try h.push(probe("hot-probe", customer: "hot", resource: "i-other", replyTo: "test:probe"))
            var probes: [String: [String: Any]] = [:]
            try h.wait("both probes answered while the other daemon is frozen", timeout: 30) {
                if let (_, bytes) = try h.redis.blockingPopRight("test:probe", timeout: 0.1) {
                    let reply = try Harness.object(bytes)
                    probes[reply["request_id"] as? String ?? "?"] = reply
                }
                return probes.count == 2
            }
            for id in ["cold-probe", "hot-probe"] {
                let reply = try #require(probes[id], "\(id)")
                #expect(reply["ok"] as? Bool == true, "\(id): \(reply)")
                #expect((reply["result"] as? [String: Any])?["recommendations_kept"] as? Int == 1, "\(id)")
            }
            // Still frozen: its in-flight messages were recovered by the live daemon once its
            // heartbeat lapsed, and the whole burst is answered.
            try h.wait("the burst answered while the other daemon is frozen", timeout: 60) {
                try h.length("test:hot") >= pushed && h.inflightCount() == 0
            }
            #expect(try h.redis.send("EXISTS", h.keys.worker(frozenID)).integer == 0, "the frozen daemon's heartbeat lapsed")

            // Thawed: nothing is answered twice, nothing twice kept, nothing dead-lettered.
            Freeze.thaw(frozen)
            try h.wait("the thawed daemon's heartbeat") { try h.redis.send("EXISTS", h.keys.worker(frozenID)).integer == 1 }
            let replies = try h.collectReplies(on: ["test:hot", "test:probe"], count: pushed, timeout: 30)
            let ids = replies.map { $0["request_id"] as? String ?? "?" }
            #expect(ids.count == pushed, "every request answered once, no late duplicate")
            #expect(Set(ids) == Set((0..<pushed).map { "hot-\($0)" }))
            #expect(replies.allSatisfy { $0["ok"] as? Bool == true }, "\(replies.filter { $0["ok"] as? Bool != true }.prefix(3))")
            let results = replies.compactMap { $0["result"] as? [String: Any] }
            #expect(results.reduce(0) { $0 + ($1["recommendations_kept"] as? Int ?? 0) } == 1)
            let active = try h.redis.send("HKEYS", h.keys.active(customer: "hot")).array?.compactMap(\.string) ?? []
            #expect(active.count == 2 && active.contains("hot-probe-rec"), "\(active)")
            var completed: [String: Int] = [:]
            for event in try h.events() where event["type"] as? String == "coordination.completed" {
                completed[(event["data"] as? [String: Any])?["response_id"] as? String ?? "?", default: 0] += 1
            }
            let responses = results.compactMap { $0["id"] as? String } + probes.values.compactMap { ($0["result"] as? [String: Any])?["id"] as? String }
            #expect(completed.count == pushed + 2 && Set(completed.keys) == Set(responses))
            #expect(completed.values.allSatisfy { $0 == 1 }, "a request completed twice")
            try h.wait("in-flight lists empty after the thaw") { try h.inflightCount() == 0 }
            #expect(try h.length(h.keys.requests) == 0)
            let dead = try h.deadLetters()
            #expect(dead.isEmpty, "\(dead.prefix(2))")
            #expect(frozen.isRunning)
        }
    }
}

extension RealRedis.FrozenDaemonTests {
    @Test("a daemon thawed after its in-flight lists were recovered, then killed mid-batch: its new in-flight messages are recovered too")
    func thawedThenKilled() throws {
        let h = try Harness()
        let frozen = try h.launch(["run", "--sim-speed", "0", "--heartbeat-ttl", "2"])
        defer { Freeze.thaw(frozen) }
        let frozenID = try Freeze.workerID(of: frozen, h)
        try h.startDaemon()
        // Frozen past its heartbeat: the live daemon declares it lapsed and recovers its lists.
        try h.wait("the frozen daemon's lists registered") { try h.hlen(h.keys.inflightLists(worker: frozenID)) > 0 }
        try Freeze.stop(frozen, h)
        try h.wait("the frozen daemon declared lapsed and recovered", timeout: 30) {
            try h.redis.send("EXISTS", h.keys.worker(frozenID)).integer == 0
                && h.redis.send("EXISTS", h.keys.inflightLists(worker: frozenID)).integer == 0
        }
        Freeze.thaw(frozen)
        // Alive again, it names its in-flight lists again, so a later death loses nothing.
        try h.wait("the thawed daemon's heartbeat") { try h.redis.send("EXISTS", h.keys.worker(frozenID)).integer == 1 }
        // The rescuer's work is done: the thawed daemon alone takes the burst below, so that it
        // is sure to hold some of it (beside a live daemon in this process it could be left
        // none on a loaded machine). Another daemon recovers what it holds when it is killed.
        h.stopDaemons()

        // Bursts of 500 until a freeze catches the thawed daemon holding a batch: on a loaded
        // machine the daemon may drain a burst between two freezes.
        var count = 0
        func burst() throws {
            _ = try h.redis.pipeline((count..<(count + 500)).map { n in
                RedisCommand("LPUSH", h.keys.requests, Wire.coordinate("k-\(n)", customer: "k-\(n)", replyTo: "test:k:\(n / 500)",
                                                                       [Wire.recommendation("r", resources: ["i-\(n)"])]))
            })
            count += 500
        }
        try burst()
        try h.wait("the thawed daemon to hold messages in flight", timeout: 60) {
            if try h.length(h.keys.requests) == 0 { try burst() }
            try Freeze.stop(frozen, h)
            if try inflight(of: frozenID, h) > 0 { return true }
            Freeze.thaw(frozen)
            return false
        }
        let lists = (0..<(count / 500)).map { "test:k:\($0)" }
        // Every list it took messages into is named again (by the step that took them).
        let named = Set((try h.redis.send("HKEYS", h.keys.inflightLists(worker: frozenID)).array ?? []).compactMap(\.string))
        for list in try h.scanKeys("\(h.keys.prefix):inflight:\(frozenID):*") where try h.length(list) > 0 {
            #expect(named.contains(list), "\(list) holds messages but is not in the index \(named.sorted())")
        }
        ChildProcess.stop(frozen, signal: SIGKILL)
        #expect(try inflight(of: frozenID, h) > 0, "the killed daemon's batch is still in flight")
        try h.startDaemon()
        let replies = try h.collectReplies(on: lists, count: count, timeout: 30)
        let ids = replies.map { $0["request_id"] as? String ?? "?" }
        #expect(ids.count == count && Set(ids).count == count, "\(ids.count) replies, \(Set(ids).count) distinct, of \(count)")
        try h.wait("in-flight lists empty") { try h.inflightCount() == 0 }
    }
}
