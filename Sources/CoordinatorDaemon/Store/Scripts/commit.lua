-- commit.lua: applies a batch of commits, each only if every one of its guards still holds
-- and (when it names an in-flight list) only if its message is still in that list,
-- removing it. This is the one way state changes: optimistic concurrency, checked and
-- applied atomically. Each commit is decided on its own, in order, seeing the writes of
-- those before it (exactly as if each ran alone, one after the other).
--
-- Isolation: every guard is checked, and then every key a write needs of one type (a
-- hash for HSET, a list for LPUSH, a stream for the events...) is checked to be absent or
-- of that type, before the commit's first write. A Redis script cannot undo a write, so
-- this is what makes a commit all-or-nothing: a key of the wrong type (planted under the
-- prefix by another writer) fails the commit whole, with nothing written and its message
-- left in flight, and the error is returned for it; the batch goes on. Nothing else the
-- daemon knows of can fail a write midway (OOM refuses only a script's first write). The
-- writes still run under `redis.pcall`, so that even then the failure stays that commit's
-- alone: its message goes back into its in-flight list. A reply that cannot be written
-- (its `reply_to` holds another type, or the ACL forbids it) does not stop the commit: the
-- commit's result says so, and the daemon dead-letters it as `reply_undeliverable`
-- (PROTOCOL.md 2.4) with the one writer of dead letters it has.
--
-- KEYS none: a batch holds many customers' commits, and the keys are in ARGV; the changes it
-- applies are to get scripts of their own with declared keys, as coordinate.lua did
-- (docs/SCRIPTS.md).
-- ARGV, per commit: the in-flight list ("" for none; "!list" for a worker's oversized list,
-- whose one message is acknowledged by its place, not its bytes), the raw message, the guard count g,
-- g pairs of (key, condition), the number of op arguments that follow, then the writes,
-- each as an argument count followed by the command and its arguments.
-- Conditions: "=value" (GET equals value), "!" (absent), "#n" (a counter, absent meaning
-- 0, equals n), "~token" (absent or equals token: a lock free or ours), "h0field" /
-- "h1field" (the hash field is absent / present), "ffield\nvalue" (the hash field holds
-- value; an empty value: the field is absent).
-- Pseudo-commands pass a payload once where it is written twice (moving bytes into Lua
-- costs more than the writes themselves):
-- - `WAKE waiters ready` moves every member of the set `waiters` onto the list `ready`;
-- - `EVENT channel stream maxlen type json` publishes the event and appends it to the
--   capped stream;
-- - `REPLY list ttl json dedupe-key dedupe-ttl reply-max always` pushes the reply (unless
--   `list` is empty); when `always` is "1" (a reply prefix
--   is set), or the push created the list, or the list already has a TTL, keeps its newest
--   reply-max entries and refreshes its TTL (any other list is someone else's: only pushed
--   to, PROTOCOL.md 2.1); stores
--   "list\\njson" under dedupe-key (unless empty) for idempotent re-delivery; a push that
--   fails is the commit's result "U<error>" (applied, reply undeliverable).
-- - `DEAD list max json` appends a dead letter and caps the list to its newest max.
-- - `UNINDEX set id versions field` removes id from an index set and, when the set is left
--   empty, its version field from the customer's versions hash too (a reader guarded by
--   "absent" may then commit: what it read, an empty index, is again the truth).
-- Returns, per commit: 1 applied, -n applied with n older replies cut by a reply list's
-- cap, "U" and Redis's error: applied, but its reply could not be pushed, 0 the message
-- was no longer in flight (another worker
-- took it over), 10+i guard i failed, or "E" and the error: of a guard Redis could not
-- check, of a key of the wrong type ("EHSET <key>: WRONGTYPE holds a string, not a hash"),
-- or of a write that failed.
-- The type each write command needs its key to have (absent is always fine); SET,
-- DEL, EXPIRE and PUBLISH take any key.
local needs = { HSET = 'hash', HDEL = 'hash', SADD = 'set', SREM = 'set', ZADD = 'zset', ZREM = 'zset',
  LPUSH = 'list', RPUSH = 'list', LREM = 'list', LTRIM = 'list', INCR = 'string', INCRBY = 'string' }
local out = {}
local p = 1
while p <= #ARGV do
  local inflight, message, guards = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2])
  -- "!list": the message is the one in that oversized list, acknowledged by its place
  -- (its bytes were never sent back); it is removed after the writes succeed.
  local held = string.sub(inflight, 1, 1) == '!'
  if held then inflight = string.sub(inflight, 2) end
  local first = p + 4 + 2 * guards
  local last = first + tonumber(ARGV[first - 1]) - 1
  local result = 1
  local dropped = 0
  local undeliverable = nil
  for i = 1, guards do
    local key, want = ARGV[p + 1 + 2 * i], ARGV[p + 2 + 2 * i]
    local kind = string.sub(want, 1, 1)
    if kind == 'f' then
      local cut = string.find(want, '\n', 1, true)
      local have = redis.pcall('HGET', key, string.sub(want, 2, cut - 1))
      if type(have) == 'table' then result = 'Eguard ' .. key .. ': ' .. have.err; break end
      if (have or '') ~= string.sub(want, cut + 1) then result = 10 + i; break end
    elseif kind == 'h' then
      local e = redis.pcall('HEXISTS', key, string.sub(want, 3))
      if type(e) == 'table' then result = 'Eguard ' .. key .. ': ' .. e.err; break end
      if tostring(e) ~= string.sub(want, 2, 2) then result = 10 + i; break end
    else
      local have = redis.pcall('GET', key)
      if type(have) == 'table' and have.err then result = 'Eguard ' .. key .. ': ' .. have.err; break end
      if kind == '!' then
        if have then result = 10 + i; break end
      elseif kind == '#' then
        if (have or '0') ~= string.sub(want, 2) then result = 10 + i; break end
      elseif kind == '~' then
        if have and have ~= string.sub(want, 2) then result = 10 + i; break end
      else
        if have ~= string.sub(want, 2) then result = 10 + i; break end
      end
    end
  end
  if result == 1 then
    -- Every key a write needs of one type is checked before the first write: a Redis
    -- script cannot undo a write, so a commit that would fail midway fails here whole.
    local bad = inflight ~= '' and misfit(inflight, 'list') or nil
    local q = first
    while q <= last and not bad do
      local op = ARGV[q + 1]
      if op == 'EVENT' then bad = misfit(ARGV[q + 3], 'stream')
      elseif op == 'DEAD' then bad = misfit(ARGV[q + 2], 'list')
      elseif op == 'UNINDEX' then bad = misfit(ARGV[q + 2], 'set') or misfit(ARGV[q + 4], 'hash')
      elseif op == 'WAKE' then bad = misfit(ARGV[q + 2], 'set') or misfit(ARGV[q + 3], 'list')
      else
        local want = needs[op]
        if want then bad = misfit(ARGV[q + 2], want) end
      end
      if bad then bad = op .. ' ' .. bad end
      q = q + tonumber(ARGV[q]) + 1
    end
    if bad then result = 'E' .. bad end
  end
  if type(result) == 'string' then
    -- A guard Redis could not check, or a key of the wrong type: nothing written.
  elseif result == 1 and held then
    if redis.call('LLEN', inflight) == 0 then result = 0 end
  elseif result == 1 and inflight ~= '' then
    -- From the tail: the oldest message of a batch, acknowledged first, is found at once.
    if redis.call('LREM', inflight, -1, message) == 0 then result = 0 end
  end
  if result == 1 then
    local q = first
    while q <= last do
      local n = tonumber(ARGV[q])
      local op = ARGV[q + 1]
      local r
      if op == 'EVENT' then
        local ok, e = pcall(emit_event, ARGV[q + 2], ARGV[q + 3], ARGV[q + 4], ARGV[q + 5], ARGV[q + 6])
        if not ok then r = { err = e } end
      elseif op == 'REPLY' then
        local list, json = ARGV[q + 2], ARGV[q + 4]
        if ARGV[q + 5] ~= '' then
          r = redis.pcall('SET', ARGV[q + 5], list .. '\n' .. json, 'EX', ARGV[q + 6])
        end
        if list ~= '' and (r == nil or type(r) ~= 'table' or not r.err) then
          local cut
          undeliverable, cut = push_reply(list, json, ARGV[q + 3], ARGV[q + 7], ARGV[q + 8])
          dropped = dropped + cut
        end
      elseif op == 'DEAD' or op == 'UNINDEX' or op == 'WAKE' then
        -- The shared pieces (shared.lua), which decide.lua uses too.
        local ok, e
        if op == 'DEAD' then ok, e = pcall(dead_letter, ARGV[q + 2], ARGV[q + 3], ARGV[q + 4])
        elseif op == 'UNINDEX' then ok, e = pcall(unindex, ARGV[q + 2], ARGV[q + 3], ARGV[q + 4], ARGV[q + 5])
        else ok, e = pcall(wake, ARGV[q + 2], ARGV[q + 3]) end
        if not ok then r = { err = e } end
      else
        r = redis.pcall(unpack(ARGV, q + 1, q + n))
      end
      if type(r) == 'table' and r.err then
        if inflight ~= '' and not held then redis.call('LPUSH', inflight, message) end
        result = 'E' .. op .. ': ' .. r.err
        break
      end
      q = q + n + 1
    end
  end
  if held and result == 1 then
    redis.call('LTRIM', inflight, 1, -1)
  end
  if result == 1 and undeliverable then
    result = 'U' .. undeliverable
  elseif result == 1 and dropped > 0 then
    result = -dropped
  end
  out[#out + 1] = result
  p = last + 1
end
return out
