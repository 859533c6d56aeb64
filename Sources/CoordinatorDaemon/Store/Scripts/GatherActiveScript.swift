import RedisClient

extension Scripts {
    /// gatherActive — what one `coordinate` can conflict with (PROTOCOL.md section 9): the
    /// customer's active recommendations listed in the given index sets (its resources, its
    /// customer-wide ones, the actions contradicting its customer-wide ones) plus the ids it
    /// names, and the version tokens its commit will be guarded by. Reads only; its cost
    /// follows the request, not the customer's history.
    ///
    /// KEYS[1] the customer's active hash; KEYS[2 .. 1+s] index sets; KEYS[2+s] the customer's
    /// versions hash.
    /// ARGV[1] s (the number of index sets), ARGV[2] v (the number of version fields), ARGV[3 ..
    /// 2+v] the version fields, ARGV[3+v ..] the ids the request names.
    /// Returns { records (array of stored records), versions (array, false when absent),
    /// named (array of 0/1: whether each named id is active) }.
    static let gatherActive = RedisScript("""
        local s, v = tonumber(ARGV[1]), tonumber(ARGV[2])
        local seen, ids = {}, {}
        for i = 2, 1 + s do
          for _, id in ipairs(redis.call('SMEMBERS', KEYS[i])) do
            if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
          end
        end
        local named = {}
        for i = 3 + v, #ARGV do
          local id = ARGV[i]
          if redis.call('HEXISTS', KEYS[1], id) == 1 then
            named[#named + 1] = 1
            if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
          else
            named[#named + 1] = 0
          end
        end
        local records = {}
        local i = 1
        while i <= #ids do
          local chunk = redis.call('HMGET', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
          for _, r in ipairs(chunk) do if r then records[#records + 1] = r end end
          i = i + 1000
        end
        local versions = {}
        i = 3
        while i <= 2 + v do
          local last = math.min(i + 999, 2 + v)
          for _, value in ipairs(redis.call('HMGET', KEYS[2 + s], unpack(ARGV, i, last))) do versions[#versions + 1] = value end
          i = last + 1
        end
        return { records, versions, named }
        """)
}
