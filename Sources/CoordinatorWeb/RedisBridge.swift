import Foundation
import Operations
import RedisClient

/// Where the console's Redis calls run: hiredis blocks, so every call goes to a dedicated thread
/// (`RedisConnectionThread`, or on a Redis Cluster `RedisClusterThread`), never Swift's
/// cooperative pool. Page reads share a few threads; decisions, which wait up to their timeout for the
/// daemon's reply, have their own, so a slow answer never holds a page; the event tail has one
/// of its own (`EventTail`, `PartitionedTail`).
final class RedisBridge: Sendable {
    /// One thread: a job gets its Redis, as a `StateRedis`.
    private enum Worker: Sendable {
        case single(RedisConnectionThread)
        case cluster(RedisClusterThread)

        func run<T: Sendable>(_ body: @escaping @Sendable (any StateRedis) throws -> T) async throws -> T {
            switch self {
            case .single(let thread): try await thread.run { try body($0) }
            case .cluster(let thread): try await thread.run { try body($0) }
            }
        }

        func close() {
            switch self {
            case .single(let thread): thread.close()
            case .cluster(let thread): thread.close()
            }
        }
    }

    private let readers: [Worker]
    private let deciders: [Worker]
    private let next = Counter()

    init(configuration: RedisConfiguration, readers: Int = 3, deciders: Int = 2) {
        func worker(_ name: String) -> Worker {
            configuration.isCluster ? .cluster(RedisClusterThread(configuration: configuration, name: name))
                : .single(RedisConnectionThread(configuration: configuration, name: name))
        }
        self.readers = (0..<readers).map { worker("web.read\($0)") }
        self.deciders = (0..<deciders).map { worker("web.decide\($0)") }
    }

    /// Runs `body` on one of the reading threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (any StateRedis) throws -> T) async throws -> T {
        try await readers[next.increment() % readers.count].run(body)
    }

    /// Runs `body` (a decision and the wait for its reply) on one of the deciding threads.
    func decide<T: Sendable>(_ body: @escaping @Sendable (any StateRedis) throws -> T) async throws -> T {
        try await deciders[next.increment() % deciders.count].run(body)
    }

    func close() {
        for worker in readers + deciders { worker.close() }
    }
}

/// A counter shared between tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
