import RedisClient

/// The scripts of cluster mode (PROTOCOL.md section 11). Each touches one slot and declares
/// every key it touches.
enum ClusterScripts {
    /// Ingress: pushes a message taken from an entry queue onto its partition's queue, unless
    /// this very move was already made (a repeat after a crash, or by a daemon that took the
    /// in-flight list over): the mark, keyed by entry queue and SHA-256 and holding the
    /// in-flight list the message was taken into, is written in the same step.
    /// KEYS[1] the partition's queue, KEYS[2] the mark. ARGV[1] the message, ARGV[2] the
    /// in-flight list, ARGV[3] the mark's TTL (ms). Returns 1 pushed, 0 already there.
    static let ingressPush = RedisScript("""
    if redis.call('GET', KEYS[2]) == ARGV[2] then return 0 end
    redis.call('LPUSH', KEYS[1], ARGV[1])
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
    return 1
    """)

    /// Ingress: the holder of an in-flight list renews its deadline, or a daemon takes a
    /// lapsed one over (its deadline is then the taker's). KEYS[1] the entry queue's ingress
    /// index. ARGV[1] the list, ARGV[2] now (ms), ARGV[3] the new deadline (ms), ARGV[4] '1' to
    /// take it only when lapsed. Returns 1 held, 0 not (someone else holds it).
    static let ingressHold = RedisScript("""
    if ARGV[4] == '1' then
      local deadline = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
      if deadline > tonumber(ARGV[2]) then return 0 end
    end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return 1
    """)

    /// Ingress: forgets a taken-over in-flight list once it is empty. KEYS[1] the index,
    /// KEYS[2] the list, KEYS[3] its parked list. Returns 1 forgotten, 0 not empty.
    static let ingressForget = RedisScript("""
    if redis.call('LLEN', KEYS[2]) > 0 or redis.call('LLEN', KEYS[3]) > 0 then return 0 end
    redis.call('HDEL', KEYS[1], KEYS[2])
    return 1
    """)

    /// Moves up to ARGV[1] more elements from the tail of KEYS[1] to the head of KEYS[2] (one
    /// slot), returned oldest first: what a blocking move was followed by when a backlog built.
    /// It stops before an element over ARGV[2] bytes (left for the next bounded blocking move,
    /// never read here) and once the elements taken pass ARGV[3] bytes in all.
    static let takeMore = RedisScript("""
    local out, bytes = {}, 0
    local max, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
    for i = 1, tonumber(ARGV[1]) do
      local m = redis.call('LINDEX', KEYS[1], -1)
      if not m or #m > max or bytes + #m > budget then break end
      redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
      bytes = bytes + #m
      out[i] = m
    end
    return out
    """)

    /// Ingress: what an in-flight list (KEYS[1]) holds, oldest first, but for its messages over
    /// ARGV[1] bytes, never returned whole: the oldest of those is moved to its parked list
    /// (KEYS[2], one slot, at most one message) when that is empty. Returns { the messages,
    /// the parked message as { its length, its first ARGV[1] + 1 bytes } or nil }.
    static let ingressHeld = RedisScript("""
    local max = tonumber(ARGV[1])
    local parked = redis.call('LINDEX', KEYS[2], 0)
    local all = redis.call('LRANGE', KEYS[1], 0, -1)
    local out = {}
    for i = #all, 1, -1 do
      local m = all[i]
      if #m <= max then
        out[#out + 1] = m
      elseif not parked then
        redis.call('LREM', KEYS[1], -1, m)
        redis.call('LPUSH', KEYS[2], m)
        parked = m
      end
    end
    if parked then return { out, { #parked, string.sub(parked, 1, max + 1) } } end
    return { out, false }
    """)

    /// A partition's lease: renewed only by its holder. KEYS[1] the lease, ARGV[1] the
    /// daemon, ARGV[2] the lease (ms). Returns 1 renewed, 0 lost.
    static let renewPartition = RedisScript("""
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
    """)

    /// A partition's lease given up, only by its holder. KEYS[1] the lease, ARGV[1] the daemon.
    static let releasePartition = RedisScript("""
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    return redis.call('DEL', KEYS[1])
    """)

    /// A reply moved from an outbox to its `reply_to` (PROTOCOL.md 2.1 and 11), by the rules of
    /// `shared.lua`'s `push_reply`. KEYS[1] the reply list. ARGV[1] the reply, ARGV[2] its TTL,
    /// ARGV[3] the cap, ARGV[4] '1' when every reply list is capped. Returns the number of
    /// older replies cut, or an error reply (the push failed: undeliverable).
    static let deliverReply = RedisScript("""
    local pushed = redis.call('LPUSH', KEYS[1], ARGV[1])
    local dropped = 0
    if ARGV[4] == '1' or pushed == 1 or (tonumber(redis.pcall('PTTL', KEYS[1])) or 0) > 0 then
      local max = tonumber(ARGV[3])
      if pushed > max then
        redis.call('LTRIM', KEYS[1], 0, max - 1)
        dropped = pushed - max
      end
      redis.call('EXPIRE', KEYS[1], ARGV[2])
    end
    return dropped
    """)
}
