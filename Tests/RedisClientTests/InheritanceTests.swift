import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

/// `.serialized`: the first test's child inherits every descriptor not marked close-on-exec,
/// the second test's pipe among them if they ran at once.
@Suite("Connections and child processes", .sharesMachine, .serialized)
struct InheritanceTests {
    /// A child spawned without closing what it inherits (posix_spawn with no file actions, as the
    /// tests' redis-servers were started) got every socket not marked close-on-exec: the server
    /// then kept a closed connection for as long as the child lived (issue 21: a daemon's intake
    /// connection left in CLIENT LIST after the daemon stopped, while another test's
    /// redis-server ran).
    @Test("a connection closed while a child spawned during its life still runs is gone from the server")
    func closedDespiteChild() throws {
        try withServer { server in
            let observer = try server.client()
            defer { observer.close() }
            let c = try server.client()
            let id = try #require(c.send("CLIENT", "ID").integer)
            let child = try spawnInheritingEverything("/bin/sleep", "30")
            defer {
                kill(child, SIGKILL)
                var status: Int32 = 0
                waitpid(child, &status, 0)
            }
            c.close()
            let deadline = Date().addingTimeInterval(5)
            var listed = true
            while listed && Date() < deadline {
                listed = (try observer.send("CLIENT", "LIST").string ?? "").split(separator: "\n")
                    .contains { $0.hasPrefix("id=\(id) ") }
                if listed { Thread.sleep(forTimeInterval: 0.01) }
            }
            #expect(!listed, "connection \(id) still listed 5 s after close(), while a child spawned during its life runs")
            // The check meant something: the child was alive all along.
            var status: Int32 = 0
            #expect(waitpid(child, &status, WNOHANG) == 0)
        }
    }

    /// The tests' redis-servers are spawned with nothing of the test process but stdio (on
    /// /dev/null): a pipe's write end open in the test process when one starts is not held by it.
    @Test("a redis-server started by a test holds none of the test process's descriptors")
    func serverInheritsNothing() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let server = try RedisServer.start()
        defer { server.stop() }
        close(ends[1])
        // End of file once no process holds the write end; a child holding it blocks the read.
        var readable = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&readable, 1, 5000)
        #expect(ready == 1, "the pipe's write end is still open 5 s after the test closed it")
        if ready == 1 {
            var byte: UInt8 = 0
            #expect(read(ends[0], &byte, 1) == 0)
        }
    }

    private func spawnInheritingEverything(_ path: String, _ arguments: String...) throws -> pid_t {
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { posix_spawn(&pid, path, nil, nil, $0.baseAddress!, environ) }
        guard result == 0 else { throw SpawnFailure(code: result) }
        return pid
    }

    struct SpawnFailure: Error { let code: Int32 }
}
