import Foundation
import RedisClient

/// Where the console's Redis calls run: hiredis blocks, so every call goes to a dedicated thread
/// (`RedisConnectionThread`), never Swift's cooperative pool. Page reads share a few threads;
/// decisions, which wait up to their timeout for the daemon's reply, have their own, so a slow
/// answer never holds a page; the event tail has one of its own (`EventTail`).
final class RedisBridge: Sendable {
    private let readers: [RedisConnectionThread]
    private let deciders: [RedisConnectionThread]
    private let next = Counter()

    init(configuration: RedisConfiguration, readers: Int = 3, deciders: Int = 2) {
        self.readers = (0..<readers).map { RedisConnectionThread(configuration: configuration, name: "web.read\($0)") }
        self.deciders = (0..<deciders).map { RedisConnectionThread(configuration: configuration, name: "web.decide\($0)") }
    }

    /// Runs `body` on one of the reading threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await readers[next.increment() % readers.count].run(body)
    }

    /// Runs `body` (a decision and the wait for its reply) on one of the deciding threads.
    func decide<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await deciders[next.increment() % deciders.count].run(body)
    }

    func close() {
        for thread in readers + deciders { thread.close() }
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
