import RedisClient

extension Scripts {
    /// requeue — hands every message of an in-flight list back to its queue's consuming end,
    /// oldest last so that it is taken first.
    ///
    /// KEYS[1] the in-flight list, KEYS[2] the queue.
    /// ARGV none.
    /// Returns the number of messages moved.
    static let requeue = RedisScript("""
        local n = 0
        while true do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
          if not v then break end
          n = n + 1
        end
        return n
        """)
}
