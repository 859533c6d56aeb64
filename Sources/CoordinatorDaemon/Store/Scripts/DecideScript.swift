import RedisClient

extension Scripts {
    /// decide (`decide.lua`): one approval decision's new state, plan or retirement, events,
    /// reply and acknowledgement; `Store.commit(_:acknowledging:in:reply:replyTo:now:)` builds
    /// its keys and arguments.
    static let decide = RedisScript(lua(PackageResources.decide_lua))
}
