import RedisClient

extension Scripts {
    /// forgetWorker — after a lapsed worker's in-flight lists were handed back, drops its index
    /// and its entry in the worker set, but only if every list it names is still empty. A worker
    /// that was only frozen may have thawed meanwhile and taken a new batch (naming its list
    /// again, a no-op on the still-present index): its index then stays, so that a later crash
    /// of it is recovered too.
    ///
    /// KEYS[1] the worker's index of in-flight lists, KEYS[2] the worker set.
    /// ARGV[1] the worker id.
    /// Returns 1 when forgotten, 0 when a list held messages again.
    static let forgetWorker = RedisScript("""
        local lists = redis.call('HKEYS', KEYS[1])
        for _, list in ipairs(lists) do
          if redis.call('LLEN', list) > 0 then return 0 end
        end
        redis.call('DEL', KEYS[1])
        redis.call('SREM', KEYS[2], ARGV[1])
        return 1
        """)
}
