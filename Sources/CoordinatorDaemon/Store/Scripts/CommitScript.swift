import RedisClient

extension Scripts {
    /// commit (`commit.lua`): applies a batch of guarded commits, each all or nothing, for the
    /// state changes that have no script of their own yet. Its header gives KEYS, ARGV and
    /// returns; `Commit` builds its arguments.
    static let commit = RedisScript(lua(PackageResources.commit_lua))

    /// coordinate (`coordinate.lua`): one `coordinate` request's outcome, reply, events and
    /// acknowledgement; `CoordinationCommit` builds its keys and arguments.
    static let coordinate = RedisScript(lua(PackageResources.coordinate_lua))
}
