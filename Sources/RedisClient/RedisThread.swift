import Foundation

/// The bridge from async code: a dedicated OS thread that owns one `RedisConnection`, so no
/// blocking hiredis call ever runs on Swift's cooperative pool. Jobs run one at a time, in the
/// order `run` was called. The connection is made lazily, on the thread, by the first job, and
/// reconnects (with backoff) as `RedisConnection` documents.
///
/// Cancelling the calling task does not cancel a job; `close()` does (the running one is
/// interrupted, pending ones fail with `.closed`).
public final class RedisConnectionThread: Sendable {
    private let worker: Worker

    /// Starts the thread (named `name`, for debuggers and logs); it connects on the first job.
    public init(configuration: RedisConfiguration, name: String) {
        worker = Worker(configuration: configuration)
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

    /// Runs `body` on the connection's thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job(
                execute: { connection in
                    do {
                        continuation.resume(returning: try body(connection))
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
    /// connection and waits for the thread to end. Idempotent. Later `run` calls throw `.closed`.
    public func close() {
        worker.close()
    }
}

private struct Job: Sendable {
    let execute: @Sendable (RedisConnection) -> Void
    let fail: @Sendable (RedisError) -> Void
}

private final class Worker: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    private var finished = false
    private var workerThread: pthread_t?
    /// Touched only by the worker thread, except `interrupt()`.
    private let connection: RedisConnection

    init(configuration: RedisConfiguration) {
        connection = RedisConnection(lazy: configuration)
    }

    func enqueue(_ job: Job) {
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
            job.execute(connection)
        }
        connection.close()
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
        if first { connection.interrupt(permanently: true) }
        for job in pending { job.fail(.closed) }
        if onWorker { return }
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
