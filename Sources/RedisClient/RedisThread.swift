import Foundation

/// The bridge from async code: a dedicated OS thread that owns one Redis client, so no blocking
/// hiredis call ever runs on Swift's cooperative pool. Jobs run one at a time, in the order
/// `run` was called. `RedisConnectionThread` owns a `RedisConnection`, made lazily on the
/// thread by the first job, which reconnects (with backoff) as `RedisConnection` documents;
/// `RedisClusterThread` owns a `RedisClusterClient`.
///
/// Cancelling the calling task does not cancel a job; `close()` does (the running one is
/// interrupted, pending ones fail with `.closed`).
public final class RedisThread<Client: AnyObject>: Sendable {
    private let worker: ThreadWorker<Client>

    /// Starts the thread (named `name`, for debuggers and logs) that owns `client`:
    /// `interrupt` wakes a call running on it from another thread, `close` ends it.
    init(client: Client, name: String, interrupt: @escaping @Sendable (Client) -> Void,
         close: @escaping @Sendable (Client) -> Void) {
        worker = ThreadWorker(client: client, interrupt: interrupt, close: close)
        let thread = Thread { [worker] in worker.loop() }
        thread.start()
        // Foundation on Linux applies a name only to a started thread: one set before start()
        // is dropped, and the new thread re-applies the name it inherited from its creator
        // (a dispatch queue's) as it starts. So name it once it runs our code. Linux allows 15
        // bytes.
        worker.waitUntilStarted()
        var short = ""
        for character in name where short.utf8.count + character.utf8.count <= 15 { short.append(character) }
        thread.name = short
    }

    deinit {
        worker.close()
    }

    /// Runs `body` on the thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Client) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = ThreadJob<Client>(
                execute: { client in
                    do {
                        continuation.resume(returning: try body(client))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                },
                fail: { error in continuation.resume(throwing: error) }
            )
            worker.enqueue(job)
        }
    }

    /// Interrupts the running job, fails pending ones with `RedisError.closed`, closes the
    /// client and waits for the thread to end. Idempotent. Later `run` calls throw `.closed`.
    public func close() {
        worker.close()
    }
}

/// A thread that owns one `RedisConnection`.
public typealias RedisConnectionThread = RedisThread<RedisConnection>

/// A thread that owns one `RedisClusterClient`: what `RedisConnectionThread` is for one Redis.
public typealias RedisClusterThread = RedisThread<RedisClusterClient>

extension RedisThread where Client == RedisConnection {
    /// Starts the thread; it connects on the first job.
    public convenience init(configuration: RedisConfiguration, name: String) {
        self.init(client: RedisConnection(lazy: configuration), name: name,
                  interrupt: { $0.interrupt(permanently: true) }, close: { $0.close() })
    }
}

extension RedisThread where Client == RedisClusterClient {
    /// Starts the thread; the client connects to the nodes as its first calls need them.
    public convenience init(configuration: RedisConfiguration, name: String) {
        self.init(client: RedisClusterClient(configuration: configuration), name: name,
                  interrupt: { $0.interrupt() }, close: { $0.close() })
    }
}

private struct ThreadJob<Client: AnyObject>: Sendable {
    let execute: @Sendable (Client) -> Void
    let fail: @Sendable (RedisError) -> Void
}

private final class ThreadWorker<Client: AnyObject>: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [ThreadJob<Client>] = []
    private var head = 0
    private var closed = false
    private var finished = false
    private var workerThread: pthread_t?
    /// Touched only by the worker thread, except through `interrupt`.
    private let client: Client
    private let interrupt: @Sendable (Client) -> Void
    private let closeClient: @Sendable (Client) -> Void

    init(client: Client, interrupt: @escaping @Sendable (Client) -> Void, close: @escaping @Sendable (Client) -> Void) {
        self.client = client
        self.interrupt = interrupt
        self.closeClient = close
    }

    func enqueue(_ job: ThreadJob<Client>) {
        condition.lock()
        if closed {
            condition.unlock()
            job.fail(.closed)
            return
        }
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func waitUntilStarted() {
        condition.lock()
        while workerThread == nil { condition.wait() }
        condition.unlock()
    }

    func loop() {
        condition.lock()
        workerThread = pthread_self()
        condition.broadcast()
        condition.unlock()
        while true {
            condition.lock()
            while head == jobs.count && !closed { condition.wait() }
            if closed {
                condition.unlock()
                break
            }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job.execute(client)
        }
        closeClient(client)
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func close() {
        condition.lock()
        let first = !closed
        closed = true
        let pending = Array(jobs[head...])
        jobs.removeAll()
        head = 0
        let onWorker = workerThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        condition.broadcast()
        condition.unlock()
        if first { interrupt(client) }
        for job in pending { job.fail(.closed) }
        if onWorker { return }
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
