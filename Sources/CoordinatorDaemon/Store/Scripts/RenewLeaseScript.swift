import RedisClient

extension Scripts {
    /// renewLease — extends a plan lease only while this worker holds it, and moves the plan's
    /// deadline in the running index.
    ///
    /// KEYS[1] the plan's lease, KEYS[2] the running-plans index.
    /// ARGV[1] worker id, ARGV[2] lease ms, ARGV[3] plan id, ARGV[4] new deadline (ms).
    /// Returns 1 when renewed, 0 when the lease is someone else's (or lapsed).
    static let renewLease = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
        return 1
        """)
}
