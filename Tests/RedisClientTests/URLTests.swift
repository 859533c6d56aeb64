import RedisClient
import Testing

@Suite("Configuration URLs")
struct URLTests {
    @Test("redis:// forms")
    func tcp() throws {
        let plain = try RedisConfiguration(url: "redis://example.com")
        #expect(plain.endpoint == .tcp(host: "example.com", port: 6379))
        #expect(plain.database == 0 && plain.password == nil && plain.username == nil)

        let full = try RedisConfiguration(url: "redis://app%40svc:p%3Ass%2Fw@10.0.0.1:6380/3")
        #expect(full.endpoint == .tcp(host: "10.0.0.1", port: 6380))
        #expect(full.username == "app@svc")
        #expect(full.password == "p:ss/w")
        #expect(full.database == 3)
        #expect(full.redactedURL == "redis://app%40svc:***@10.0.0.1:6380/3")
        #expect(!full.redactedURL.contains("p:ss"))

        let passwordOnly = try RedisConfiguration(url: "redis://:secret@localhost")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")
        #expect(passwordOnly.redactedURL == "redis://:***@localhost:6379/0")

        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000/1")
        #expect(ipv6.endpoint == .tcp(host: "::1", port: 7000))
        #expect(ipv6.redactedURL == "redis://[::1]:7000/1")
        #expect(try RedisConfiguration(url: "redis://h:1/").database == 0)
    }

    @Test("unix:// forms")
    func unix() throws {
        let socket = try RedisConfiguration(url: "unix:///var/run/redis.sock")
        #expect(socket.endpoint == .unix(path: "/var/run/redis.sock"))
        let withDB = try RedisConfiguration(url: "unix:///tmp/r.sock?db=2&password=s%26cret")
        #expect(withDB.database == 2)
        #expect(withDB.password == "s&cret")
        #expect(withDB.redactedURL == "unix:///tmp/r.sock?db=2&password=***")
    }

    @Test("bad URLs are rejected with a clear message", arguments: [
        ("http://localhost", "expected redis://"),
        ("localhost:6379", "expected redis://"),
        ("rediss://h", "TLS"),
        ("redis://", "missing host"),
        ("redis://:pw@:6379", "missing host"),
        ("redis://h:notaport", "port"),
        ("redis://h:70000", "port"),
        ("redis://h:6379/x", "database"),
        ("redis://h:6379/-1", "database"),
        ("redis://h?db=1", "query"),
        ("redis://us%zzer:pw@h", "percent"),
        ("redis://[::1", "IPv6"),
        ("unix://relative.sock", "absolute"),
        ("unix:///tmp/r.sock?db=x", "db"),
        ("unix:///tmp/r.sock?timeout=1", "unknown query parameter"),
    ])
    func bad(url: String, mentions: String) {
        do {
            let parsed = try RedisConfiguration(url: url)
            Issue.record("\(url) parsed as \(parsed)")
        } catch {
            guard case .invalidURL(let message) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(message.contains(url))
            #expect(message.contains(mentions), "\(message)")
        }
    }
}
