#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide settings the client needs.
public enum RedisProcess {
    /// Ignores SIGPIPE for the whole process. hiredis writes with plain write(2): writing to a
    /// connection the server has closed would otherwise kill the process instead of failing the
    /// command with a `.connection` error. Call once at start-up, before any connection is used.
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
