import RedisClient

extension Scripts {
    /// takeBatch — moves up to ARGV[1] messages from a queue's consuming end into an
    /// in-flight list, atomically (a crash leaves each message in exactly one of the two).
    ///
    /// KEYS[1] the queue, KEYS[2] the in-flight list.
    /// ARGV[1] the most messages to move.
    /// Returns the messages moved, oldest first.
    static let takeBatch = RedisScript("""
        local out = {}
        for i = 1, tonumber(ARGV[1]) do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
          if not v then break end
          out[#out + 1] = v
        end
        return out
        """)
}
