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

    /// Applies commits, each only if every one of its guards still holds and (when it names an
    /// in-flight list) only if its message is still in that list, removing it. This is the one
    /// way state changes: optimistic concurrency, checked and applied atomically. A batch of
    /// commits goes in one call; each is decided on its own, in order, seeing the writes of
    /// those before it (exactly as if each ran alone, one after the other).
    ///
    /// ARGV, per commit: the in-flight list ("" for none), the raw message, the guard count g,
    /// g pairs of (key, condition) where the condition is "=value" (GET equals value), "!"
    /// (absent) or "#n" (a counter, absent meaning 0, equals n), the number of op arguments
    /// that follow, then the writes, each as an argument count followed by the command and its
    /// arguments. Three pseudo-commands pass a payload once where it is written twice (moving
    /// bytes into Lua costs more than the writes themselves):
    /// - `WAKE waiters ready` moves every member of the set `waiters` onto the list `ready`;
    /// - `EVENT channel stream maxlen type json` publishes the event and appends it to the
    ///   capped stream;
    /// - `REPLY list ttl json [dedupe-key dedupe-ttl]` pushes the reply (unless `list` is
    ///   empty) and refreshes the list's TTL, and stores it for idempotent re-delivery.
    /// Returns, per commit, 1 when applied, 0 when the message was no longer in flight (another
    /// worker took it over), 10+i when guard i failed.
    static let commit = RedisScript("""
        local out = {}
        local p = 1
        while p <= #ARGV do
          local inflight, message, guards = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2])
          local first = p + 4 + 2 * guards
          local last = first + tonumber(ARGV[first - 1]) - 1
          local result = 1
          for i = 1, guards do
            local want = ARGV[p + 2 + 2 * i]
            local kind = string.sub(want, 1, 1)
            local have = redis.call('GET', ARGV[p + 1 + 2 * i])
            if kind == '!' then
              if have then result = 10 + i; break end
            elseif kind == '#' then
              if (have or '0') ~= string.sub(want, 2) then result = 10 + i; break end
            else
              if have ~= string.sub(want, 2) then result = 10 + i; break end
            end
          end
          if result == 1 and inflight ~= '' then
            if redis.call('LREM', inflight, 1, message) == 0 then result = 0 end
          end
          if result == 1 then
            local q = first
            while q <= last do
              local n = tonumber(ARGV[q])
              local op = ARGV[q + 1]
              if op == 'EVENT' then
                redis.call('PUBLISH', ARGV[q + 2], ARGV[q + 6])
                redis.call('XADD', ARGV[q + 3], 'MAXLEN', '~', ARGV[q + 4], '*', 'type', ARGV[q + 5], 'event', ARGV[q + 6])
              elseif op == 'REPLY' then
                if n > 4 then redis.call('SET', ARGV[q + 5], ARGV[q + 4], 'EX', ARGV[q + 6]) end
                if ARGV[q + 2] ~= '' then
                  redis.call('LPUSH', ARGV[q + 2], ARGV[q + 4])
                  redis.call('EXPIRE', ARGV[q + 2], ARGV[q + 3])
                end
              elseif op == 'WAKE' then
                local members = redis.call('SMEMBERS', ARGV[q + 2])
                for _, m in ipairs(members) do redis.call('LPUSH', ARGV[q + 3], m) end
                redis.call('DEL', ARGV[q + 2])
              else
                redis.call(unpack(ARGV, q + 1, q + n))
              end
              q = q + n + 1
            end
          end
          out[#out + 1] = result
          p = last + 1
        end
        return out
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
