import Foundation

/// Starting child processes from any thread.
///
/// A child inherits its parent thread's signal mask, and the threads Swift Testing and
/// Dispatch run code on block most signals, SIGTERM included: a redis-server or daemon
/// started from one of them would never see a SIGTERM. Starting it with an empty mask gives
/// it the signals a process started from a shell has.
public enum ChildProcess {
    public static func run(_ process: Process) throws {
        var empty = sigset_t()
        var previous = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }
}
