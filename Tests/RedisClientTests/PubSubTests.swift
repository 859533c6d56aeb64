import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Pub/Sub", .sharesMachine)
struct PubSubTests {
    @Test("messages arrive in order, patterns too, and next times out with nil")
    func publishSubscribe() throws {
        try withServer { server in
            let subscriber = try RedisSubscriber(configuration: server.configuration)
            defer { subscriber.close() }
            try subscriber.subscribe(["events", "other"])
            try subscriber.psubscribe(["user:*"])
            #expect(try subscriber.next(timeout: 0.1) == nil)

            let publisher = try server.client()
            defer { publisher.close() }
            #expect(try publisher.send("PUBLISH", "events", [0, 255] as [UInt8]) == .integer(1))
            #expect(try publisher.send("PUBLISH", "user:7", "hi") == .integer(1))
            #expect(try publisher.send("PUBLISH", "nobody", "lost") == .integer(0))
            #expect(try publisher.send("PUBLISH", "other", "last") == .integer(1))

            #expect(try subscriber.next(timeout: 5) == RedisPubSubMessage(channel: "events", pattern: nil, payload: [0, 255]))
            #expect(try subscriber.next(timeout: 5) == RedisPubSubMessage(channel: "user:7", pattern: "user:*", payload: bytes("hi")))
            #expect(try subscriber.next(timeout: 5) == RedisPubSubMessage(channel: "other", pattern: nil, payload: bytes("last")))
            #expect(try subscriber.next(timeout: 0.1) == nil)
        }
    }

    @Test("after a server restart the subscriber reconnects and subscribes again")
    func resubscribe() throws {
        try withServer { server in
            let subscriber = try RedisSubscriber(configuration: server.configuration)
            defer { subscriber.close() }
            try subscriber.subscribe(["events"])
            try server.restart()
            var received: RedisPubSubMessage?
            let publisher = try server.client()
            defer { publisher.close() }
            for _ in 0..<50 where received == nil {
                do {
                    // The first call reports the dropped connection; later ones reconnect.
                    if let message = try subscriber.next(timeout: 0.05) { received = message; break }
                    _ = try publisher.send("PUBLISH", "events", "again")
                } catch let error as RedisError {
                    #expect(error.description.contains("connection"), "\(error)")
                }
            }
            #expect(received?.payload == bytes("again"))
        }
    }
}
