import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

/// Starts a cluster for one test and always stops it (servers killed, directories removed).
func withCluster<T>(masters: Int = 3, replicasPerMaster: Int = 0, arguments: [String] = [], _ body: (RedisCluster) throws -> T) throws -> T {
    let cluster = try RedisCluster.start(masters: masters, replicasPerMaster: replicasPerMaster, arguments: arguments)
    defer { cluster.stop() }
    return try body(cluster)
}

@Suite("Cluster: slots, URLs, redirects (no server)")
struct ClusterUnitTests {
    @Test("CRC16-XMODEM and hash tags as the Redis Cluster spec gives them")
    func knownSlots() {
        // The spec's check value for CRC16-XMODEM, and its hash tag examples.
        #expect(RedisClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisClusterSlot.of("{user1000}.following") == RedisClusterSlot.of("{user1000}.followers"))
        #expect(RedisClusterSlot.of("foo{}{bar}") == Int(RedisClusterSlot.crc16(Array("foo{}{bar}".utf8)) & 0x3FFF))
        #expect(RedisClusterSlot.of("foo{{bar}}zap") == RedisClusterSlot.of("{bar"))
        #expect(RedisClusterSlot.of("foo{bar}{zap}") == RedisClusterSlot.of("bar"))
    }

    @Test("the first key of the commands the daemon sends")
    func firstKeys() {
        let script = RedisScript("return 1")
        #expect(RedisClusterSlot.firstKey(of: RedisCommand("SET", "k", "v")) == Array("k".utf8))
        #expect(RedisClusterSlot.firstKey(of: script.command(keys: ["a", "b"], args: ["x"])) == Array("a".utf8))
        #expect(RedisClusterSlot.firstKey(of: script.command(keys: [], args: ["x"])) == nil)
        #expect(RedisClusterSlot.firstKey(of: RedisCommand("FCALL", "f", 1, "k", "x")) == Array("k".utf8))
        #expect(RedisClusterSlot.firstKey(of: RedisCommand("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")) == Array("s".utf8))
        #expect(RedisClusterSlot.firstKey(of: RedisCommand("WAIT", 1, 100)) == nil)
        #expect(RedisClusterSlot.firstKey(of: RedisCommand("PING")) == nil)
    }

    @Test("CLUSTER SHARDS: a failed old master without slots is left out, an online master wins, '?' endpoints are the answering host's")
    func shardsParsing() throws {
        func node(_ port: Int, _ role: String, _ health: String, endpoint: String = "10.0.0.9") -> RedisReply {
            .array([.bulk(bytes("id")), .bulk(bytes("n\(port)")), .bulk(bytes("port")), .integer(Int64(port)),
                    .bulk(bytes("ip")), .bulk(bytes(endpoint == "?" ? "" : endpoint)), .bulk(bytes("endpoint")), .bulk(bytes(endpoint)),
                    .bulk(bytes("role")), .bulk(bytes(role)), .bulk(bytes("replication-offset")), .integer(0),
                    .bulk(bytes("health")), .bulk(bytes(health))])
        }
        func shard(_ slots: [Int64], _ nodes: [RedisReply]) -> RedisReply {
            .array([.bulk(bytes("slots")), .array(slots.map { .integer($0) }), .bulk(bytes("nodes")), .array(nodes)])
        }
        let reply = RedisReply.array([
            shard([0, 100, 200, 16383], [node(7001, "replica", "online"), node(7000, "master", "online")]),
            // After a failover: the dead master keeps a shard of its own, with no slots.
            shard([], [node(7002, "master", "failed")]),
            shard([101, 199], [node(7003, "master", "failed"), node(7004, "master", "online", endpoint: "?")]),
        ])
        let topology = try RedisClusterTopology.parse(shards: reply, answeredBy: .tcp(host: "10.0.0.1", port: 7000))
        #expect(topology.coveredSlots == 16384)
        #expect(topology.shards.count == 2)
        #expect(topology.shards[0] == .init(slots: [0...100, 200...16383], master: .tcp(host: "10.0.0.9", port: 7000),
                                            replicas: [.tcp(host: "10.0.0.9", port: 7001)]))
        #expect(topology.shards[1].master == .tcp(host: "10.0.0.1", port: 7004))
        #expect(throws: RedisError.self) { try RedisClusterTopology.parse(shards: .array([shard([1], [])]), answeredBy: .tcp(host: "h", port: 1)) }
    }

    @Test("redis+cluster:// URLs, and --cluster on a plain URL")
    func urls() throws {
        let c = try RedisConfiguration(url: "redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(c.clusterSeeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 6379), .tcp(host: "::1", port: 7002)])
        #expect(c.endpoint == .tcp(host: "10.0.0.1", port: 7000))
        #expect(c.username == "u" && c.password == "p@ss")
        #expect(c.redactedURL == "redis+cluster://u:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://h:1/2") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis+cluster://h:1,,h:2") }
        let plain = try RedisConfiguration(url: "redis://h:7000/0")
        #expect(!plain.isCluster)
        #expect(try plain.clustered().clusterSeeds == [.tcp(host: "h", port: 7000)])
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://h:7000/3").clustered() }
    }
}

@Suite("Cluster: a real 3-master cluster", .sharesMachine)
struct ClusterTests {
    @Test("slots match CLUSTER KEYSLOT for edge cases and 3,000 random keys")
    func slotsMatchServer() throws {
        try withCluster { cluster in
            let node = try cluster.direct(cluster.servers[0].port)
            defer { node.close() }
            var keys: [[UInt8]] = [
                "", "{}", "{{a}}", "a{b}c{d}", "{}a", "a{}", "a{}b", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
                "{", "}", "}{", "{a", "a}", "}a{b}", "{user1000}.following", "123456789", "coord:{p7}:requests",
            ].map { Array($0.utf8) }
            let alphabet = Array("{}ab".utf8)
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<3000 {
                keys.append((0..<Int.random(in: 0...16, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                })
            }
            let replies = try node.pipeline(keys.map { RedisCommand("CLUSTER", "KEYSLOT", $0) })
            var mismatches = 0
            for (key, reply) in zip(keys, replies) where reply != .integer(Int64(RedisClusterSlot.of(key))) {
                mismatches += 1
                Issue.record("key \(key): server \(reply), client \(RedisClusterSlot.of(key))")
            }
            #expect(mismatches == 0)
        }
    }

    @Test("1,000 keys written and read through the client each live on the master of their slot")
    func routing() throws {
        try withCluster { cluster in
            let client = RedisClusterClient(configuration: cluster.configuration)
            let keys = (0..<1000).map { "key:\($0)" }
            for key in keys { _ = try client.send("SET", key, "v:\(key)") }
            for key in keys { #expect(try client.send("GET", key) == .bulk(bytes("v:\(key)"))) }
            // All 1,000 again in one round trip per master.
            let all = try client.pipelinePerMaster(keys.map { RedisCommand("GET", $0) })
            #expect(all == keys.map { .bulk(bytes("v:\($0)")) })
            // A pipeline of one slot, keyless WAIT riding along.
            let tagged = try client.pipeline([RedisCommand("SET", "{t}a", 1), RedisCommand("INCR", "{t}a"), RedisCommand("WAIT", 0, 0)])
            #expect(tagged == [.status("OK"), .integer(2), .integer(0)])
            #expect(client.statistics.moved == 0 && client.statistics.topologyRefreshes == 1)

            // Independently of the client: ask each master directly; the owner answers with the
            // value, every other master with MOVED to the owner.
            let masters = try cluster.masterPorts()
            #expect(masters.count == 3)
            var holders = [Int](repeating: 0, count: keys.count)
            for port in masters {
                let node = try cluster.direct(port)
                defer { node.close() }
                let replies = try node.pipeline(keys.map { RedisCommand("GET", $0) })
                var held = 0
                for (index, reply) in replies.enumerated() {
                    if reply == .bulk(bytes("v:\(keys[index])")) {
                        holders[index] += 1
                        held += 1
                        #expect(try cluster.masterPort(forSlot: RedisClusterSlot.of(keys[index])) == port)
                    } else {
                        #expect(reply.errorMessage?.hasPrefix("MOVED \(RedisClusterSlot.of(keys[index])) ") == true)
                    }
                }
                #expect(held > 250, "master \(port) holds \(held) of 1,000 keys")
            }
            #expect(holders.allSatisfy { $0 == 1 })

            // Each node has its own script cache: one flushed, its NOSCRIPT is answered by loading
            // the script there, and the other nodes are not asked to.
            let script = RedisScript("return redis.call('INCR', KEYS[1])")
            let scriptKeys = (0..<30).map { "script:\($0)" }
            for key in scriptKeys { #expect(try client.run(script, keys: [key], args: []) == .integer(1)) }
            let flushed = try cluster.direct(masters[1])
            _ = try flushed.send("SCRIPT", "FLUSH")
            for key in scriptKeys { #expect(try client.run(script, keys: [key], args: []) == .integer(2)) }
            #expect(try flushed.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
            flushed.close()

            // The CLUSTER SLOTS fallback reads the same owners as CLUSTER SHARDS.
            let node = try cluster.direct(masters[0])
            defer { node.close() }
            let endpoint = RedisConfiguration.Endpoint.tcp(host: "127.0.0.1", port: masters[0])
            let fromSlots = try RedisClusterTopology.parse(slots: try node.send("CLUSTER", "SLOTS"), answeredBy: endpoint)
            #expect(fromSlots.coveredSlots == 16384)
            for slot in stride(from: 0, to: 16384, by: 97) {
                let owner = fromSlots.shards.first { $0.slots.contains { $0.contains(slot) } }?.master
                #expect(owner == client.master(forSlot: slot))
            }
        }
    }

    @Test("CROSSSLOT is its own error, sent once and never retried; keyless and cross-slot calls are refused before sending")
    func crossSlot() throws {
        try withCluster { cluster in
            let client = RedisClusterClient(configuration: cluster.configuration)
            #expect(RedisClusterSlot.of("a") != RedisClusterSlot.of("b"))
            for command in [RedisCommand("MSET", "a", "1", "b", "2"), RedisScript("return 1").command(keys: ["a", "b"], args: [])] {
                do throws(RedisClusterError) {
                    _ = try client.send(command)
                    Issue.record("\(command.name) across slots succeeded")
                } catch .crossSlot(let message) {
                    #expect(message.hasPrefix("CROSSSLOT"))
                } catch {
                    Issue.record("\(command.name): \(error)")
                }
            }
            #expect(throws: RedisClusterError.self) { try client.pipeline([RedisCommand("SET", "a", 1), RedisCommand("SET", "b", 1)]) }
            #expect(throws: RedisClusterError.self) { try client.send("PING") }
            // The server saw exactly two CROSSSLOT commands (one MSET, one EVALSHA): none retried.
            var crossSlotErrors = 0
            for port in try cluster.masterPorts() {
                let node = try cluster.direct(port)
                defer { node.close() }
                let info = try node.send("INFO", "errorstats").string ?? ""
                for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_CROSSSLOT:count=") {
                    crossSlotErrors += Int(line.split(separator: "=").last ?? "") ?? 0
                }
            }
            #expect(crossSlotErrors == 2)
            let statistics = client.statistics
            #expect(statistics.moved + statistics.asked + statistics.tryAgain + statistics.connectionErrors == 0)
            #expect(try client.send("GET", "a") == .null)
        }
    }

    @Test("a BLMOVE waiting on a slot that moves comes back MOVED and is re-issued on the new owner")
    func blockedPopFollowsTheSlot() throws {
        try withCluster { cluster in
            let client = RedisClusterClient(configuration: cluster.configuration)
            let slot = RedisClusterSlot.of("{blk}q")
            let source = try cluster.masterPort(forSlot: slot)
            let target = try cluster.masterPorts().first { $0 != source }!
            let waiter = Background { try client.blockingMove(from: "{blk}q", to: "{blk}inflight", timeout: 20) }
            let sourceNode = try cluster.direct(source)
            let targetNode = try cluster.direct(target)
            defer {
                sourceNode.close()
                targetNode.close()
            }
            try waitUntilBlocked(sourceNode, command: "blmove")
            try cluster.migrate(slot: slot, to: target)
            // Blocked on the new owner: the pop was re-issued there, not timed out.
            try waitUntilBlocked(targetNode, command: "blmove")
            _ = try targetNode.send("LPUSH", "{blk}q", "job-1")
            #expect(try waiter.wait() == bytes("job-1"))
            #expect(try targetNode.send("LRANGE", "{blk}inflight", 0, -1) == .array([.bulk(bytes("job-1"))]))
            #expect(client.statistics.moved >= 1)
            #expect(client.master(forSlot: slot) == .tcp(host: "127.0.0.1", port: target))
            // A blocking helper refuses an endless wait: it could never be re-issued.
            #expect(throws: RedisClusterError.self) { try client.blockingMove(from: "{blk}q", to: "{blk}x", timeout: 0) }
        }
    }
}

@Suite("Cluster: TRYAGAIN", .sharesMachine)
struct ClusterTryAgainTests {
    @Test("a multi-key command on a half-moved slot gets TRYAGAIN: backed off and retried until the move ends, or thrown past the retry budget")
    func tryAgain() throws {
        try withCluster { cluster in
            let client = RedisClusterClient(configuration: cluster.configuration)
            _ = try client.send("SET", "{m}a", "1")
            _ = try client.send("SET", "{m}b", "2")
            let slot = RedisClusterSlot.of("{m}a")
            let target = try cluster.masterPorts().first { $0 != (try? cluster.masterPort(forSlot: slot)) }!
            let migration = try #require(try cluster.beginMigration(slot: slot, to: target))
            try cluster.migrateKeys(migration, keys: ["{m}a"])

            // With a short budget the TRYAGAIN comes back as the error, after some retries.
            var impatient = RedisClusterClient.Options()
            impatient.retryTimeout = 0.3
            let short = RedisClusterClient(configuration: cluster.configuration, options: impatient)
            let started = Date()
            do throws(RedisClusterError) {
                _ = try short.send("MGET", "{m}a", "{m}b")
                Issue.record("MGET on a half-moved slot succeeded")
            } catch .redis(.server(let message)) {
                #expect(message.hasPrefix("TRYAGAIN"))
            } catch {
                Issue.record("\(error)")
            }
            let waited = -started.timeIntervalSinceNow
            #expect(waited < 1.5)
            #expect(short.statistics.tryAgain >= 2)

            // With the default budget the MGET waits until the move is finished, then succeeds.
            // The move ends only once the reader has met TRYAGAIN and is backing off: it waited
            // for the move, rather than coming after it.
            let reader = Background { try client.send("MGET", "{m}a", "{m}b") }
            let metBy = Date().addingTimeInterval(20)
            while client.statistics.tryAgain == 0 && Date() < metBy { Thread.sleep(forTimeInterval: 0.005) }
            #expect(client.statistics.tryAgain >= 1, "the reader never met TRYAGAIN")
            try cluster.finishMigration(migration)
            #expect(try reader.wait() == .array([.bulk(bytes("1")), .bulk(bytes("2"))]))
            let statistics = client.statistics
            print("TRYAGAIN: budget of 0.3 s spent after \(String(format: "%.2f", waited)) s, \(short.statistics.tryAgain) retries; patient client: \(statistics)")
            #expect(statistics.tryAgain >= 1)
            #expect(statistics.backoffSeconds > 0)
        }
    }
}
