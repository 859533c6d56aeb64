import RedisClient

/// The Lua scripts behind every multi-key change. Each runs atomically in Redis, so two
/// daemons never both apply a change and a crash never leaves half of one. The scripts of
/// state changes are `.lua` files under `Store/Scripts/`, compiled into the binary, each
/// headed by its purpose, KEYS, ARGV and returns, and each preceded by `shared.lua` (type
/// checks, events, replies: one copy of each rule).
enum Scripts {
    static let all = [takeBatch, requeue, commit, coordinate, decide, renewLease, pendingApprovals, gatherActive, forgetWorker]

    /// A change script's source: the shared pieces, then its own file.
    static func lua(_ own: [UInt8]) -> String {
        String(decoding: PackageResources.shared_lua + [0x0A] + own, as: UTF8.self)
    }
}
