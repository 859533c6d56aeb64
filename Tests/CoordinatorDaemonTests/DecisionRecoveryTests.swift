import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Recovery is not only for requests: a dead daemon's approval decisions in flight are
    /// taken over too, and each is applied once.
    @Suite("A dead daemon's decisions in flight", .sharesMachine)
    struct DecisionRecoveryTests {
        @Test("A daemon SIGKILLed mid-batch of 1,500 approval decisions: the next daemon recovers them, each applied and answered once")
        func killedMidDecisions() throws {
            let h = try Harness()
            // 1,500 pending approvals, made by a daemon that is then stopped.
            try h.startDaemon()
            let total = 1500
            var commands: [RedisCommand] = []
            for n in 0..<total {
                commands.append(RedisCommand("LPUSH", "coord:requests", Wire.coordinate(
                    "pend-\(n)", customer: "cust-dec-\(n % 20)", replyTo: "test:pending",
                    [Wire.recommendation("dec-\(n)", action: "migrate_database", risk: "high", resources: ["db-\(n)"])])))
            }
            _ = try h.redis.pipeline(commands)
            var approvals: [String] = []
            for reply in try h.collectReplies(on: "test:pending", count: total, timeout: 90, settled: false) {
                let result = try #require(reply["result"] as? [String: Any])
                approvals.append(try #require((result["approvals"] as? [[String: Any]])?.first?["id"] as? String))
            }
            #expect(approvals.count == total)
            h.stopDaemons()

            let process = try h.launch(["run", "--heartbeat-ttl", "2", "--sim-speed", "0", "--batch-size", "16"])
            _ = try h.redis.pipeline(approvals.map { id in
                RedisCommand("LPUSH", "coord:approvals", Wire.json(
                    ["approval_id": id, "decision": "approve", "user_id": "alice", "request_id": "d-\(id)", "reply_to": "test:dec"]))
            })
            // Frozen while it holds decisions in flight, some answered and some not; then killed.
            try h.wait("the daemon to hold decisions in flight", timeout: 60) {
                guard try h.length("test:dec") > 0 else { return false }
                try Freeze.stop(process, h)
                if try h.inflightCount() > 0, try h.length("test:dec") < total { return true }
                kill(process.processIdentifier, SIGCONT)
                return false
            }
            let held = try h.inflightCount()
            ChildProcess.stop(process, signal: SIGKILL)
            #expect(held > 0, "the killed daemon held decisions in flight")

            try h.startDaemon { $0.heartbeatTTL = 2 }
            let replies = try h.collectReplies(on: "test:dec", count: total, timeout: 90)
            #expect(replies.count == total, "each decision answered once")
            #expect(replies.allSatisfy { $0["ok"] as? Bool == true })
            #expect(Set(replies.compactMap { $0["request_id"] as? String }).count == total)
            try h.settle()
            let approved = try h.events().filter { $0["type"] as? String == "approval.approved" }
            #expect(approved.count == total, "each approval approved once")
            #expect(Set(approved.compactMap { $0["approval_id"] as? String }) == Set(approvals))
            #expect(try h.deadLetters().isEmpty)
            #expect(try h.inflightCount() == 0)
        }
    }
}
