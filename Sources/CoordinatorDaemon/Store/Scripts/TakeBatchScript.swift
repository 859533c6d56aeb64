import RedisClient

extension Scripts {
    /// takeBatch — moves up to ARGV[1] messages from a queue's consuming end into an
    /// in-flight list, atomically (a crash leaves each message in exactly one of the two), and
    /// names that list in its worker's index in the same step. A worker frozen past its
    /// heartbeat is declared lapsed and its index deleted; once thawed, the first batch it takes
    /// names its list again, so a later crash can never leave messages in a list nobody knows.
    ///
    /// With a size bound (ARGV[3] > 0), a message over it is never returned whole: it goes to
    /// the worker's oversized list (KEYS[4], at most one message, named in the index too) and
    /// only its length and first ARGV[4] bytes are returned; while that list holds a message,
    /// that message is returned (so) again, first, until it is acknowledged. A batch also stops
    /// before its messages pass ARGV[5] bytes in all (the first message is always taken).
    ///
    /// KEYS[1] the queue, KEYS[2] the in-flight list, KEYS[3] the worker's index of in-flight
    /// lists (a hash: list -> queue), KEYS[4] the oversized list (with a size bound).
    /// ARGV[1] the most messages to move; ARGV[2] "1" to name the list even when nothing moves
    /// (after a blocking move put a message there outside this script); ARGV[3] the size bound
    /// (0: none); ARGV[4] the bytes of an oversized message returned; ARGV[5] the batch's bytes;
    /// ARGV[6] "1" when a blocking move just put an oversized message at the head of KEYS[2].
    /// Returns the messages moved, oldest first; an oversized one as {length, first bytes}.
    static let takeBatch = RedisScript("""
        local max = tonumber(ARGV[3] or '0')
        if max > 0 then
          if ARGV[6] == '1' then redis.call('LMOVE', KEYS[2], KEYS[4], 'LEFT', 'LEFT') end
          local big = redis.call('LINDEX', KEYS[4], 0)
          if big then
            redis.call('HSETNX', KEYS[3], KEYS[4], KEYS[1])
            return { { #big, string.sub(big, 1, tonumber(ARGV[4])) } }
          end
        end
        local out, bytes = {}, 0
        for i = 1, tonumber(ARGV[1]) do
          local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
          if not v then break end
          if max > 0 and #v > max then
            redis.call('LMOVE', KEYS[2], KEYS[4], 'LEFT', 'LEFT')
            redis.call('HSETNX', KEYS[3], KEYS[4], KEYS[1])
            out[#out + 1] = { #v, string.sub(v, 1, tonumber(ARGV[4])) }
            break
          end
          if max > 0 and #out > 0 and bytes + #v > tonumber(ARGV[5]) then
            redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT')
            break
          end
          bytes = bytes + #v
          out[#out + 1] = v
        end
        -- HSETNX: no write (nothing replicated or appended to the AOF) when already named.
        if #out > 0 or ARGV[2] == '1' then redis.call('HSETNX', KEYS[3], KEYS[2], KEYS[1]) end
        return out
        """)
}
