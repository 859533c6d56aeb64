-- shared.lua: the pieces every change script uses, prepended to each script's own file (one
-- copy of each rule, however many scripts apply it).

-- A key a write needs of one type is checked before the first write: a Redis script cannot
-- undo a write, so a change that would fail midway (a key of the wrong type, planted by
-- another writer) fails here whole, with nothing written. Returns the error text, or nil.
local fit = {}
local function misfit(key, want)
  if fit[key] == want then return nil end
  local have = redis.call('TYPE', key)['ok']
  if have ~= 'none' and have ~= want then
    return key .. ': WRONGTYPE holds a ' .. have .. ', not a ' .. want
  end
  fit[key] = want
  return nil
end

-- Runs a write and raises its error (caught by the pcall around a change's writes).
local function must(reply, what)
  if type(reply) == 'table' and reply.err then error(what .. ': ' .. reply.err, 0) end
  return reply
end

-- Publishes an event on the channel and appends it to the capped stream (PROTOCOL.md 4), the
-- payload passed once.
local function emit_event(channel, stream, maxlen, kind, json)
  must(redis.pcall('PUBLISH', channel, json), 'PUBLISH')
  must(redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'event', json), 'XADD ' .. stream)
end

-- Pushes a reply (PROTOCOL.md 2.1, 2.4). Under a reply prefix (always = '1'), or when the push
-- created the list, or the list already has a TTL, keeps its newest max replies and refreshes
-- its TTL; any other list belongs to someone else and is only pushed to. A TTL the daemon may
-- not read (a write-only ACL pattern) counts as none. Returns Redis's error when the push
-- failed (the change still stands: the daemon dead-letters the message reply_undeliverable),
-- and the number of older replies the cap cut.
local function push_reply(list, json, ttl, max, always)
  local pushed = redis.pcall('LPUSH', list, json)
  if type(pushed) == 'table' and pushed.err then return pushed.err, 0 end
  local dropped = 0
  if always == '1' or pushed == 1 or (tonumber(redis.pcall('PTTL', list)) or 0) > 0 then
    max = tonumber(max)
    if pushed > max then
      redis.pcall('LTRIM', list, 0, max - 1)
      dropped = pushed - max
    end
    redis.pcall('EXPIRE', list, ttl)
  end
  return nil, dropped
end

-- Delivers a change's reply: on a Redis Cluster (an outbox given) into the partition's outbox
-- as "list\njson", for the daemon to move to `list` (PROTOCOL.md 11); otherwise pushed to `list`
-- by push_reply's rules. Returns what push_reply returns.
local function deliver_reply(outbox, list, json, ttl, max, always)
  if outbox then
    must(redis.pcall('LPUSH', outbox, list .. '\n' .. json), 'LPUSH ' .. outbox)
    return nil, 0
  end
  return push_reply(list, json, ttl, max, always)
end

-- Runs `command key items...` in chunks of 1,000 items (an even number, so that field-value
-- pairs stay together; unpack fails past ~8,000 values).
local function chunked(command, key, items)
  local i = 1
  while i <= #items do
    local last = math.min(i + 999, #items)
    must(redis.pcall(command, key, unpack(items, i, last)), command .. ' ' .. key)
    i = last + 1
  end
end

-- Appends a dead letter (PROTOCOL.md 6) and keeps the list's newest max entries.
local function dead_letter(list, max, json)
  must(redis.pcall('RPUSH', list, json), 'RPUSH ' .. list)
  must(redis.pcall('LTRIM', list, -tonumber(max), -1), 'LTRIM ' .. list)
end

-- Takes id out of an index set; when the set is left empty, its field in the customer's
-- versions hash goes too (a reader guarded by "absent" may then commit: what it read, an
-- empty index, is again the truth).
local function unindex(set, id, versions, field)
  must(redis.pcall('SREM', set, id), 'SREM ' .. set)
  if redis.call('EXISTS', set) == 0 then must(redis.pcall('HDEL', versions, field), 'HDEL ' .. versions) end
end

-- Moves every plan waiting on a recommendation onto the ready list (to be started or
-- cancelled, now that it ended), and deletes the waiters set.
local function wake(waiters, ready)
  local members = must(redis.pcall('SMEMBERS', waiters), 'SMEMBERS ' .. waiters)
  for _, m in ipairs(members) do must(redis.pcall('LPUSH', ready, m), 'LPUSH ' .. ready) end
  must(redis.pcall('DEL', waiters), 'DEL ' .. waiters)
end

-- Stores a new plan and hands it on: queued at once (execute_now: the queued marker, the
-- ready list) or held until execute_plan (by creation time, for --plan-hold). A plan's
-- storage is spelled here alone for the scripts that create plans.
local function create_plan(plan_key, queued_key, ready, held, id, json, created_ms, now)
  must(redis.pcall('SET', plan_key, json), 'SET ' .. plan_key)
  if now then
    must(redis.pcall('SET', queued_key, '1'), 'SET ' .. queued_key)
    must(redis.pcall('LPUSH', ready, id), 'LPUSH ' .. ready)
  else
    must(redis.pcall('ZADD', held, created_ms, id), 'ZADD ' .. held)
  end
end

-- Acknowledges a change's message: removes it from its in-flight list, from the tail (the
-- oldest message of a batch, acknowledged first, is found at once). This is the change's first
-- write: a list of another type fails it whole, and once a script has written, Redis lets its
-- later writes through even at maxmemory (a full Redis refuses only a script's first write that
-- may grow memory), so a change is never cut in two. Returns nil once acknowledged, otherwise
-- what the script returns: 0 when the message is no longer in flight (another worker took it
-- over), or the error.
local function acknowledge(list, message)
  local acked = redis.pcall('LREM', list, -1, message)
  if type(acked) == 'table' then return 'ELREM ' .. list .. ': ' .. acked.err end
  if acked == 0 then return 0 end
  return nil
end
