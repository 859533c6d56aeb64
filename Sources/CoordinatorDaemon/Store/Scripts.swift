import RedisClient

/// The Lua scripts behind every multi-key change, one file each under `Store/Scripts/` with a
/// header giving purpose, KEYS, ARGV and returns. Each runs atomically in Redis, so two
/// daemons never both apply a change and a crash never leaves half of one.
enum Scripts {
    static let all = [takeBatch, requeue, commit, renewLease, pendingApprovals, gatherActive, forgetWorker]
}
