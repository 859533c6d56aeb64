import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

/// The console on a real 3-master Redis Cluster: its live tail merges the per-partition
/// streams `coord:{p<k>}:events:stream` (PROTOCOL.md section 11) in time order, and resumes
/// after `Last-Event-ID`, across a restart of the console.
@Suite(.sharesMachine)
struct WebConsoleClusterTests {
    /// One SSE message: its id and its data as JSON.
    struct Message {
        var id: String
        var event: [String: Any]
    }

    static func messages(_ body: String) -> [Message] {
        body.components(separatedBy: "\n\n").compactMap { block in
            var id: String?
            var data: String?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            guard let id, let data, let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
            return Message(id: id, event: object)
        }
    }

    /// `ms-seq.partition` as numbers, to check the order.
    static func position(_ id: String) -> [UInt64] {
        id.split(whereSeparator: { $0 == "-" || $0 == "." }).map { UInt64($0) ?? 0 }
    }

    static func add(_ client: RedisClusterClient, partition: Int, n: Int) throws {
        let event = #"{"type":"test.merged","customer_id":"cust-p\#(partition)","at":"2026-12-07T10:00:00.000Z","data":{"n":\#(n)}}"#
        _ = try client.send("XADD", "coord:{p\(partition)}:events:stream", "*", "event", event)
        // Apart by a few ms, so that time order is the order they were added in.
        Thread.sleep(forTimeInterval: 0.005)
    }

    @Test func theLiveTailMergesThePartitionStreamsInTimeOrderAndResumesAfterARestart() throws {
        let cluster = try RedisCluster.start(masters: 3)
        defer { cluster.stop() }
        let env = try WebEnvironment()
        defer { env.stop() }
        let client = RedisClusterClient(configuration: cluster.configuration)
        defer { client.close() }
        // Partitions on different masters (their slots: {p0} 12539 … spread over the three).
        let partitions = [3, 11, 7, 0, 15]
        let masters = try Set(partitions.map { try cluster.masterPort(forSlot: RedisClusterSlot.of("coord:{p\($0)}:events:stream")) })
        #expect(masters.count >= 2, "the test's partitions should be on more than one master")
        // An event from before the console started: shown first as one of the latest, and
        // replayed from the start of the streams.
        try Self.add(client, partition: 15, n: 0)

        let web = try env.startWeb(["--redis-url", cluster.url, "--partitions", "16"])
        #expect(env.log("web.log").contains("events from 16 partition streams"))
        // The other pages read the partitions rather than failing on MOVED (ClusterOperationsTests
        // drives them with a daemon): here no daemon holds any, nothing is pending.
        let overview = try HTTP.request("GET", port: env.webPort, path: "/")
        #expect(overview.status == 200 && overview.body.contains("0 of 16 partitions held")
            && overview.body.contains("<strong id=\"pending-count\">0</strong>"), "\(overview.body)")

        // Live: events added to five partitions on several masters while the tail is open. The
        // writer starts once the tail showed its first event: the console subscribed before it
        // sent any. The read ends with the last event expected (or at 20 s).
        let order = [(3, 1), (11, 2), (7, 3), (3, 4), (0, 5), (15, 6), (11, 7)]
        let writer = Thread {
            let client = RedisClusterClient(configuration: cluster.configuration)
            for (partition, n) in order { try? Self.add(client, partition: partition, n: n) }
            client.close()
        }
        var writing = false
        let live = try HTTP.request("GET", port: env.webPort, path: "/events/stream?type=test.", readFor: 20) { sofar in
            let count = Self.messages(sofar.body).count
            if count > 0, !writing {
                writing = true
                writer.start()
            }
            return count >= 1 + order.count
        }
        #expect(live.status == 200)
        let got = Self.messages(live.body)
        // A new tail first shows the latest events (here the one from before), then the live ones.
        #expect(got.map { ($0.event["data"] as? [String: Any])?["n"] as? Int } == [0] + order.map { $0.1 }, "\(live.body)")
        #expect(got.map { $0.event["partition"] as? Int } == [15] + order.map { $0.0 })
        #expect(zip(got, got.dropFirst()).allSatisfy { Self.position($0.id).lexicographicallyPrecedes(Self.position($1.id)) }, "ids not in order: \(got.map(\.id))")
        #expect(got.allSatisfy { $0.id.hasSuffix(".\($0.event["partition"] as? Int ?? -1)") })

        // The console restarts; meanwhile more events come. A browser resuming after the third
        // event gets the rest, in order, each once.
        ChildProcess.stop(web)
        try Self.add(client, partition: 7, n: 8)
        try Self.add(client, partition: 3, n: 9)
        try env.startWeb(["--redis-url", cluster.url, "--partitions", "16"])
        let resumeID = try #require(got.first { ($0.event["data"] as? [String: Any])?["n"] as? Int == 3 }?.id)
        let resumed = try HTTP.request("GET", port: env.webPort, path: "/events/stream?type=test.", headers: ["Last-Event-ID": resumeID], readFor: 20) {
            Self.messages($0.body).count >= 6
        }
        let after = Self.messages(resumed.body)
        #expect(after.map { ($0.event["data"] as? [String: Any])?["n"] as? Int } == [4, 5, 6, 7, 8, 9], "\(resumed.body)")
        // From the start of the streams: the event from before the first start too, merged.
        let all = try HTTP.request("GET", port: env.webPort, path: "/events/stream?type=test.&after=0-0", readFor: 20) {
            Self.messages($0.body).count >= 10
        }
        #expect(Self.messages(all.body).map { ($0.event["data"] as? [String: Any])?["n"] as? Int } == Array(0...9), "\(all.body)")
        // An id that names no partition of this console is refused.
        let bad = try HTTP.request("GET", port: env.webPort, path: "/events/stream", headers: ["Last-Event-ID": "1-0.99"])
        #expect(bad.status == 400)
    }
}
