import Foundation
import RedisClient

/// A dedicated OS thread that owns one `RedisClusterClient` (which blocks, as hiredis does), so
/// that no cluster call runs on Swift's cooperative pool: what `RedisConnectionThread` is for one
/// Redis. Jobs run one at a time, in the order `run` was called.
final class ClusterThread: @unchecked Sendable {
    private let client: RedisClusterClient
    private let condition = NSCondition()
    /// A job gets the client, or nil when the thread closed before it ran.
    private var jobs: [@Sendable (RedisClusterClient?) -> Void] = []
    private var closed = false
    private var finished = false

    init(configuration: RedisConfiguration, name: String) {
        client = RedisClusterClient(configuration: configuration)
        let thread = Thread { [self] in loop() }
        thread.start()
        var short = ""
        for character in name where short.utf8.count + character.utf8.count <= 15 { short.append(character) }
        thread.name = short
    }

    /// Runs `body` on the thread and returns its result; after `close()` it throws `.closed`.
    func run<T: Sendable>(_ body: @escaping @Sendable (RedisClusterClient) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            condition.lock()
            guard !closed else {
                condition.unlock()
                continuation.resume(throwing: RedisError.closed)
                return
            }
            jobs.append { client in
                guard let client else {
                    continuation.resume(throwing: RedisError.closed)
                    return
                }
                do {
                    continuation.resume(returning: try body(client))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            condition.signal()
            condition.unlock()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !closed { condition.wait() }
            if closed {
                condition.unlock()
                break
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job(client)
        }
        client.close()
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// Interrupts the running job, fails pending ones with `.closed`, and waits for the thread.
    func close() {
        condition.lock()
        guard !closed else {
            condition.unlock()
            return
        }
        closed = true
        let pending = jobs
        jobs.removeAll()
        condition.broadcast()
        condition.unlock()
        client.interrupt()
        for job in pending { job(nil) }
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
