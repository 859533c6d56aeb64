import RedisClient

extension Scripts {
    /// pendingApprovals — a customer's pending approvals that have not expired, soonest
    /// expiry first (`list_approvals`).
    ///
    /// KEYS[1] the customer's pending-approvals index (zset by expiry ms).
    /// ARGV[1] and ARGV[2] the head and tail that make an approval id its key (the approval
    /// keys are built, so they cannot be declared). "Now" is Redis's own clock.
    /// Returns the stored approvals.
    static let pendingApprovals = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + 1
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
        local out = {}
        for _, id in ipairs(ids) do
          local v = redis.call('GET', ARGV[1] .. id .. ARGV[2])
          if v then out[#out + 1] = v end
        end
        return out
        """)
}
