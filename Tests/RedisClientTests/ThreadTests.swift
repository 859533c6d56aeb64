import Foundation
import RedisClient
import TestSupport
import TestTraits
import Testing

@Suite("RedisConnectionThread", .sharesMachine)
struct ThreadTests {
    // Tasks of a group start in no set order, so this cannot show FIFO; it shows that every call
    // completes exactly once, each with its own result.
    @Test("many concurrent run calls from async code all complete, each exactly once")
    func concurrentRuns() async throws {
        try await withServer { server in
            let thread = RedisConnectionThread(configuration: server.configuration, name: "redis-test")
            defer { thread.close() }
            let results = try await withThrowingTaskGroup(of: Int64.self) { group in
                for _ in 0..<200 {
                    group.addTask {
                        try await thread.run { connection in
                            try connection.send("INCR", "n").integer ?? -1
                        }
                    }
                }
                var all: [Int64] = []
                for try await value in group { all.append(value) }
                return all
            }
            #expect(results.sorted() == Array(1...200))
            let name = try await thread.run { _ in Thread.current.name }
            #expect(name == "redis-test")
            // Errors thrown by the body come back to the caller.
            await #expect(throws: RedisError.self) {
                try await thread.run { connection in try connection.send("NOPE") }
            }
        }
    }

    @Test("close() interrupts the running job and fails pending ones with .closed")
    func closeFailsPending() async throws {
        try await withServer { server in
            let thread = RedisConnectionThread(configuration: server.configuration, name: "redis-close")
            // Connect first, so the blocked job below is really blocked in BLMOVE.
            _ = try await thread.run { connection in try connection.send("PING") }
            let blocked = Task { try await thread.run { connection in try connection.blockingMove(from: "q", to: "p", timeout: 0) } }
            // The others are queued only once the server shows the BLMOVE blocked: tasks started
            // together may start in any order (a test runs on threads of its own, not a FIFO
            // pool), and a PING run before the BLMOVE would be answered.
            let configuration = server.configuration
            try await Task.detached {
                let observer = try RedisConnection(configuration: configuration)
                defer { observer.close() }
                try waitUntilBlocked(observer, command: "blmove")
            }.value
            let pending = (0..<5).map { _ in Task { try await thread.run { connection in try connection.send("PING") } } }
            await Task.detached { thread.close() }.value
            await #expect(throws: RedisError.closed) { try await blocked.value }
            for task in pending {
                await #expect(throws: RedisError.closed) { try await task.value }
            }
            await #expect(throws: RedisError.closed) { try await thread.run { _ in 1 } }
            thread.close()
        }
    }
}
