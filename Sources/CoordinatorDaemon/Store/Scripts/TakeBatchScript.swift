import RedisClient

extension Scripts {
    /// takeBatch — moves up to ARGV[1] messages from a queue's consuming end into an
    /// in-flight list, atomically (a crash leaves each message in exactly one of the two), and
    /// names that list in its worker's index in the same step. A worker frozen past its
    /// heartbeat is declared lapsed and its index deleted; once thawed, the first batch it takes
    /// names its list again, so a later crash can never leave messages in a list nobody knows.
    ///
    /// KEYS[1] the queue, KEYS[2] the in-flight list, KEYS[3] the worker's index of in-flight
    /// lists (a hash: list -> queue).
    /// ARGV[1] the most messages to move; ARGV[2] "1" to name the list even when nothing moves
    /// (after a blocking move put a message there outside this script).
    /// Returns the messages moved, oldest first.
    static let takeBatch = RedisScript("""
        local out = {}
        for i = 1, tonumber(ARGV[1]) do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
          if not v then break end
          out[#out + 1] = v
        end
        -- HSETNX: no write (nothing replicated or appended to the AOF) when already named.
        if #out > 0 or ARGV[2] == '1' then redis.call('HSETNX', KEYS[3], KEYS[2], KEYS[1]) end
        return out
        """)
}
