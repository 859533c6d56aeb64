import Foundation

/// Threads of one test's own, for its task to run on (`withTaskExecutorPreference`), off
/// Swift's cooperative pool. The tests of this package are mostly synchronous and block their
/// thread for seconds (waiting on Redis, a daemon, a child process); on the pool, which is as
/// wide as the machine has cores, two of them would stop every other test, and every task that
/// waits for a pool thread (a daemon run in-process, a time limit). Two threads: the test's
/// body blocks one, and its time limit and any child task still run on the other.
final class TestThreads: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var finished = false

    init(name: String, count: Int = 2) {
        for index in 0..<count {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the threads end once the jobs already enqueued have run.
    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty && !finished { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
