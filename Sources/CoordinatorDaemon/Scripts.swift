import RedisClient

/// The Lua scripts behind every multi-key change: each runs atomically in Redis, so two
/// daemons never both apply a change and a crash never leaves half of one.
enum Scripts {
    /// Moves up to ARGV[1] messages from the queue's consuming end into the in-flight list.
    /// KEYS: queue, in-flight list. Returns the messages, oldest first.
    static let takeBatch = RedisScript("""
        local out = {}
        for i = 1, tonumber(ARGV[1]) do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
          if not v then break end
          out[#out + 1] = v
        end
        return out
        """)

    /// Hands every message of an in-flight list back to its queue's consuming end, oldest
    /// last so that it is taken first. KEYS: in-flight list, queue. Returns the count.
    static let requeue = RedisScript("""
        local n = 0
        while true do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
          if not v then break end
          n = n + 1
        end
        return n
        """)

    /// Applies a list of writes only if every guard still holds, and (when KEYS[1] is not
    /// empty) only if the message is still in this worker's in-flight list, removing it.
    /// This is the one way state changes: optimistic concurrency, checked and applied atomically.
    ///
    /// KEYS[1]: in-flight list ("" for none); KEYS[2..]: guarded keys.
    /// ARGV[1]: the raw message; ARGV[2..1+guards]: per guarded key, "=value" (GET equals value),
    /// "!" (absent) or "#n" (a counter, absent meaning 0, equals n); then the writes, each as
    /// an argument count followed by the command and its arguments. Three pseudo-commands pass
    /// a payload once where it is written twice (moving bytes into Lua costs more than the
    /// writes themselves):
    /// - `WAKE waiters ready` moves every member of the set `waiters` onto the list `ready`;
    /// - `EVENT channel stream maxlen type json` publishes the event and appends it to the
    ///   capped stream;
    /// - `REPLY list ttl json [dedupe-key dedupe-ttl]` pushes the reply (unless `list` is
    ///   empty) and refreshes the list's TTL, and stores it for idempotent re-delivery.
    /// Returns 1 when applied, 0 when the message was no longer in flight (another worker took
    /// it over), 10+i when guard i failed.
    static let commit = RedisScript("""
        local guards = #KEYS - 1
        for i = 1, guards do
          local want = ARGV[1 + i]
          local kind = string.sub(want, 1, 1)
          local have = redis.call('GET', KEYS[1 + i])
          if kind == '!' then
            if have then return 10 + i end
          elseif kind == '#' then
            if (have or '0') ~= string.sub(want, 2) then return 10 + i end
          else
            if have ~= string.sub(want, 2) then return 10 + i end
          end
        end
        if KEYS[1] ~= '' then
          if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
        end
        local p = 2 + guards
        while p <= #ARGV do
          local n = tonumber(ARGV[p])
          local op = ARGV[p + 1]
          if op == 'EVENT' then
            redis.call('PUBLISH', ARGV[p + 2], ARGV[p + 6])
            redis.call('XADD', ARGV[p + 3], 'MAXLEN', '~', ARGV[p + 4], '*', 'type', ARGV[p + 5], 'event', ARGV[p + 6])
          elseif op == 'REPLY' then
            if n > 4 then redis.call('SET', ARGV[p + 5], ARGV[p + 4], 'EX', ARGV[p + 6]) end
            if ARGV[p + 2] ~= '' then
              redis.call('LPUSH', ARGV[p + 2], ARGV[p + 4])
              redis.call('EXPIRE', ARGV[p + 2], ARGV[p + 3])
            end
          elseif op == 'WAKE' then
            local members = redis.call('SMEMBERS', ARGV[p + 2])
            for _, m in ipairs(members) do redis.call('LPUSH', ARGV[p + 3], m) end
            redis.call('DEL', ARGV[p + 2])
          else
            redis.call(unpack(ARGV, p + 1, p + n))
          end
          p = p + n + 1
        end
        return 1
        """)

    /// Renews a plan lease only while this worker holds it. KEYS: lease, running index.
    /// ARGV: worker id, lease ms, plan id, deadline ms. Returns 1 when renewed.
    static let renewLease = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
        return 1
        """)

    /// A customer's pending approvals that have not expired, soonest expiry first.
    /// KEYS: the customer's pending index. ARGV: now (ms), the approval key prefix.
    static let pendingApprovals = RedisScript("""
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
        local out = {}
        for _, id in ipairs(ids) do
          local v = redis.call('GET', ARGV[2] .. id)
          if v then out[#out + 1] = v end
        end
        return out
        """)

    static let all = [takeBatch, requeue, commit, renewLease, pendingApprovals]
}
