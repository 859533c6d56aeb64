import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("Authentication and endpoints", .sharesMachine)
struct AuthTests {
    @Test("ACL user from a redis:// URL; NOPERM for a restricted user")
    func aclUsers() throws {
        try withServer(password: "adminpw") { server in
            let admin = try server.client()
            defer { admin.close() }
            _ = try admin.send("ACL", "SETUSER", "app", "on", ">s3cr@t:/", "~*", "+@all")
            _ = try admin.send("ACL", "SETUSER", "reader", "on", ">rpw", "~*", "+get")
            _ = try admin.send("SET", "shared", "value")

            let url = "redis://app:s3cr%40t%3A%2F@127.0.0.1:\(server.port)/2"
            let app = try RedisConnection(configuration: RedisConfiguration(url: url))
            defer { app.close() }
            #expect(try app.send("ACL", "WHOAMI").string == "app")
            _ = try app.send("SET", "in-db-2", "x")
            #expect(try admin.send("EXISTS", "in-db-2") == .integer(0), "SELECT 2 was applied")

            let reader = try RedisConnection(configuration: RedisConfiguration(url: "redis://reader:rpw@127.0.0.1:\(server.port)"))
            defer { reader.close() }
            #expect(try reader.send("GET", "shared").string == "value")
            do {
                _ = try reader.send("SET", "shared", "changed")
                Issue.record("restricted user could SET")
            } catch let error as RedisError {
                #expect(error.serverCode == "NOPERM", "\(error)")
            }
        }
    }

    @Test("a wrong password is a .server error with Redis's WRONGPASS message")
    func wrongPassword() throws {
        try withServer(password: "right") { server in
            var configuration = server.configuration
            configuration.password = "wrong"
            do {
                _ = try RedisConnection(configuration: configuration)
                Issue.record("connected with a wrong password")
            } catch let error as RedisError {
                #expect(error.serverCode == "WRONGPASS", "\(error)")
            }
            // No password at all: commands fail with NOAUTH.
            let anonymous = try RedisConnection(configuration: RedisConfiguration(endpoint: configuration.endpoint))
            defer { anonymous.close() }
            do {
                _ = try anonymous.send("GET", "k")
                Issue.record("unauthenticated GET succeeded")
            } catch let error as RedisError {
                #expect(error.serverCode == "NOAUTH", "\(error)")
            }
        }
    }

    @Test("connection refused is a .connection error naming the endpoint")
    func refused() throws {
        // A port held, bound but not listening, for the whole test: refused, and never taken
        // meanwhile by a server of a suite running in parallel.
        let reservation = try PortReservation()
        defer { reservation.release() }
        let port = reservation.port
        do {
            _ = try RedisConnection(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
            Issue.record("connected to a stopped server")
        } catch {
            #expect(error == .connection("127.0.0.1:\(port): Connection refused"))
        }
        do {
            _ = try RedisConnection(configuration: RedisConfiguration(endpoint: .unix(path: "/nonexistent/redis.sock")))
            Issue.record("connected to a missing socket")
        } catch {
            guard case .connection(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.hasPrefix("/nonexistent/redis.sock: "))
        }
        do {
            _ = try RedisConnection(configuration: RedisConfiguration(url: "redis://no-such-host.invalid:6379"))
            Issue.record("resolved an .invalid host")
        } catch {
            guard case .connection(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.hasPrefix("no-such-host.invalid:6379: "))
        }
    }

    @Test("unix socket with ?db=N")
    func unixSocket() throws {
        try withServer(unixSocket: true) { server in
            let path = try #require(server.unixSocketPath)
            let viaSocket = try RedisConnection(configuration: RedisConfiguration(url: "unix://\(path)?db=1"))
            defer { viaSocket.close() }
            _ = try viaSocket.send("SET", "via", "socket")
            let tcp = try server.client()
            defer { tcp.close() }
            _ = try tcp.send("SELECT", 1)
            #expect(try tcp.send("GET", "via").string == "socket")
            #expect(try viaSocket.send("CLIENT", "INFO").string?.contains("laddr=\(path)") == true
                || (try viaSocket.send("CLIENT", "INFO").string?.contains("flags=U") == true))
        }
    }
}
