@testable import CoordinatorDaemon
import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// On a Redis Cluster (PROTOCOL.md sections 6 and 11): ingress never reads a message over --max-message-bytes
    /// whole; it passes on its first bytes, which the partition refuses as it would the whole.
    @Suite("Cluster: oversized messages refused unread by ingress", .sharesMachine)
    struct ClusterOversizedTests {
        @Test("Three 100 MiB requests through coord:requests on a cluster: each answered too_large once and dead-lettered, the daemon's peak RSS under 150 MB, a small request after them answered")
        func hundredMiBThroughIngress() throws {
            let cluster = try RedisCluster.start(masters: 3)
            defer { cluster.stop() }
            let h = ClusterHarness(cluster, name: "big")
            defer { h.stop() }
            let daemon = Process()
            daemon.executableURL = Harness.binary
            daemon.arguments = ["run", "--cluster", "--partitions", "\(ClusterHarness.partitionCount)", "--prefix", h.prefix,
                                "--heartbeat-ttl", "2", "--sim-speed", "0"]
            daemon.environment = ChildProcess.environment(["REDIS_URL": cluster.url])
            daemon.standardOutput = FileHandle.nullDevice
            daemon.standardError = FileHandle.nullDevice
            try ChildProcess.run(daemon)
            defer { _ = ChildProcess.stop(daemon) }
            let replies = h.list("huge")
            try h.push(Wire.coordinate("ready", customer: "c-ready", replyTo: h.list("ready"), [Wire.recommendation("r")]))
            #expect(try h.reply(on: h.list("ready"), timeout: 60)["ok"] as? Bool == true)

            let size = 100 << 20
            for n in 0..<3 {
                let head = Array(#"{"reply_to":"\#(replies)","request_id":"huge-\#(n)","kind":"coordinate","customer_id":"c-\#(n)","recommendations":[],"pad":""#.utf8)
                let message = head + [UInt8](repeating: UInt8(ascii: "x"), count: size - head.count - 2) + Array(#""}"#.utf8)
                _ = try h.client.send("LPUSH", h.root.requests, message)
            }
            try h.push(Wire.coordinate("after", customer: "c-after", replyTo: h.list("after"), [Wire.recommendation("a")]))
            var answered: [String] = []
            for _ in 0..<3 {
                let reply = try h.reply(on: replies, timeout: 90)
                #expect(Harness.code(reply) == "too_large", "\(reply)")
                answered.append(try #require(reply["request_id"] as? String))
            }
            #expect(answered.sorted() == ["huge-0", "huge-1", "huge-2"])
            #expect(try h.reply(on: h.list("after"), timeout: 60)["ok"] as? Bool == true)
            let letters = try h.deadLettersEventually(count: 3)
            #expect(letters.count == 3)
            for letter in letters {
                #expect(Harness.code(letter) == "too_large")
                #expect(letter["truncated"] as? Bool == true)
                #expect(letter["raw_sha256"] == nil, "the daemon never read the whole message")
            }
            try h.settle(timeout: 60)
            #expect(try h.length(replies) == 0, "each answered once")
            let peak = try OversizedMessageTests.peakRSS(daemon.processIdentifier)
            print("cluster oversized: the daemon's peak RSS after three 100 MiB messages: \(peak / 1_048_576) MiB")
            #expect(peak < 150_000_000, "peak RSS \(peak / 1_048_576) MiB")
        }
    }
}
