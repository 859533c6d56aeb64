-- coordinate.lua: commits one `coordinate` request (PROTOCOL.md 2.2): the recommendations it
-- kept become active and indexed, its approvals and plans are stored, its events published, its
-- reply pushed and remembered under its request_id, and its message acknowledged, all at once;
-- only if what the daemon read of the customer (or assumed: nothing) still holds.
--
-- KEYS[1] the message's in-flight list      KEYS[2] the customer's active hash
-- KEYS[3] the customer's versions hash      KEYS[4] the customer's lock
-- KEYS[5] the event stream                  KEYS[6] held plans (zset)
-- KEYS[7] ready plans (list)                KEYS[8] pending approvals (zset)
-- KEYS[9] the customer's pending approvals (zset)
-- KEYS[10] the customer's journal (hash: next, parts, token) while a staged commit holds it
-- KEYS[11] a staged commit's parts (hash: p<i>, written before its first call, with a TTL)
-- then, when ARGV[2] says so, the request's dedupe key ('d') and the outbox ('o', on a Redis
-- Cluster: the reply goes there as "reply_list\nreply", PROTOCOL.md 11), the staged marker of
-- the message ('M', with 'R' or 'F' when no request_id stores the reply), a signed message's
-- replay mark ('V', with 'S' and 'R': checked absent, then set to "1" for ARGV[20] s); then
-- ARGV[10] index sets, ARGV[11] approval keys, ARGV[12] plan keys, and with 'x' one queued
-- marker per plan.
--
-- A change too large for one short call is staged (docs/DESIGN.md, "Staged commits"): its
-- later parts' calls are first written to KEYS[11], one blob each; the first call ('S') checks
-- the guards and that they are all there, takes the customer's lock for good, writes the
-- journal (ARGV[19] parts) and applies part 1; each later call ('P', ARGV[19] its number)
-- applies its part once, under the lock, in order; the one before the last ('R') stores the
-- reply under the request_id (or, without one, under the staged marker of the message); the
-- last ('F') acknowledges the message (if still in the in-flight list it names), pushes the
-- reply it reads back from there (not sent again) and frees the lock. (A copy of a 7 MB reply
-- costs Redis milliseconds, the reason these two are calls of their own.) Whoever meets the
-- journal (return 12) applies the remaining parts from it.
-- On one Redis, the call also writes outside the customer's hash tag: the in-flight list, the
-- stream, the plan and approval indexes, approvals and plans (docs/SCRIPTS.md). The reply list
-- alone is not among the KEYS (ARGV[18]): a script's declared keys need read and write access,
-- and the daemon's Redis user may only write reply lists (deploy/redis/users.acl).
--
-- ARGV[1] the message (acknowledged by LREM)
-- ARGV[2] flags: 'd' dedupe key given, 'o' outbox given, 'L' the lock is ours (released),
--         'a' every reply list is capped (a reply prefix is set), 'x' plans start at once,
--         'S' the first call of a staged commit, 'P' a later one, 'R' the one storing the reply,
--         'F' its last
-- ARGV[3] our lock token ('' when we hold none: the lock must then be free)
-- ARGV[4] the reply, ARGV[5] reply TTL, ARGV[6] reply cap, ARGV[7] dedupe TTL,
-- ARGV[8] the event channel, ARGV[9] the stream's MAXLEN
-- ARGV[10..16] counts: index sets, approvals, plans, version guards, named ids, records, events
-- ARGV[17] the new version token, ARGV[18] the reply list ('' for none)
-- ARGV[19] staged: the number of parts ('S') or this part's number ('P'); '0' otherwise
-- ARGV[20] the replay mark's TTL ('V')
-- then: version guards (field, value or '' for absent); named ids (id, '1' active or '0');
-- records (id, json); per index set: n, then n ids; n bumped version fields, then the fields;
-- approvals (id, json, expiry ms); plans (id, json, created ms); events (type, json).
--
-- Returns 1 applied; -n applied, n older replies cut by the reply list's cap; "U" and Redis's
-- error: applied, the reply could not be pushed; 0 the message is no longer in flight (another
-- worker took it over); 11 a guard failed (compute again); 12 the customer is held by a staged
-- commit (apply its journal, then compute again); 13 this part was applied already (by another
-- worker rolling the journal forward); "E" and the error: a guard Redis could not read, a key
-- of the wrong type, or a write that failed (nothing written, the message left in flight).
local flags = ARGV[2]
local function has(c) return string.find(flags, c, 1, true) ~= nil end
local journal, parts = KEYS[10], KEYS[11]
local k = 12
local dedupe, reply_list
if has('d') then dedupe = KEYS[k]; k = k + 1 end
local outbox
if has('o') then outbox = KEYS[k]; k = k + 1 end
local marker
if has('M') then marker = KEYS[k]; k = k + 1 end
local seen
if has('V') then seen = KEYS[k]; k = k + 1 end
local opening, part, last = has('S'), has('P'), has('F')
local stage = tonumber(ARGV[19])
if ARGV[18] ~= '' then reply_list = ARGV[18] end
local ns, na, np = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local nv, nn, nr, ne = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local sets, approvals, plans = k, k + ns, k + ns + na
local queued = plans + np
local now_plans = has('x')
local p = 21

-- Guards, read only.
local function unreadable(key, reply) return 'Eguard ' .. key .. ': ' .. reply.err end
if part then
  -- A later part: under our lock, and next in the journal.
  local held = redis.pcall('GET', KEYS[4])
  if type(held) == 'table' then return unreadable(KEYS[4], held) end
  local next_part = redis.pcall('HGET', journal, 'next')
  if type(next_part) == 'table' and next_part.err then return unreadable(journal, next_part) end
  if held ~= ARGV[3] or tonumber(next_part) ~= stage then return 13 end
end
if nv > 0 then
  local i = 0
  while i < nv do
    local fields, want = {}, {}
    for j = 1, math.min(1000, nv - i) do
      fields[j] = ARGV[p]; want[j] = ARGV[p + 1]; p = p + 2
    end
    local have = redis.pcall('HMGET', KEYS[3], unpack(fields))
    if have.err then return unreadable(KEYS[3], have) end
    for j = 1, #fields do
      if (have[j] or '') ~= want[j] then return 11 end
    end
    i = i + #fields
  end
  fit[KEYS[3]] = 'hash'
end
for i = 1, nn do
  local e = redis.pcall('HEXISTS', KEYS[2], ARGV[p])
  if type(e) == 'table' then return unreadable(KEYS[2], e) end
  if tostring(e) ~= ARGV[p + 1] then return 11 end
  p = p + 2
end
if nn > 0 then fit[KEYS[2]] = 'hash' end
local lock = redis.pcall('GET', KEYS[4])
if type(lock) == 'table' then return unreadable(KEYS[4], lock) end
if lock and lock ~= ARGV[3] then
  if redis.call('EXISTS', journal) == 1 then return 12 end
  return 11
end
-- Types, before the first write.
local bad = (nr > 0 and misfit(KEYS[2], 'hash')) or (nv > 0 and misfit(KEYS[3], 'hash'))
  or (ne > 0 and misfit(KEYS[5], 'stream'))
  or (np > 0 and (now_plans and misfit(KEYS[7], 'list') or (not now_plans and misfit(KEYS[6], 'zset'))))
  or (na > 0 and (misfit(KEYS[8], 'zset') or misfit(KEYS[9], 'zset')))
  or (outbox and misfit(outbox, 'list'))
  or ((opening or part) and (misfit(journal, 'hash') or misfit(parts, 'hash')))
for i = 0, ns - 1 do bad = bad or misfit(KEYS[sets + i], 'set') end
if bad then return 'E' .. bad end

if opening then
  -- A staged commit's first write is its lock, held until its last part: the message must
  -- still be ours, and its request_id unanswered.
  local at = redis.pcall('LPOS', KEYS[1], ARGV[1])
  if type(at) == 'table' then return 'ELPOS ' .. KEYS[1] .. ': ' .. at.err end
  if not at then return 0 end
  if dedupe and redis.call('EXISTS', dedupe) == 1 then return 11 end
  if seen and redis.call('EXISTS', seen) == 1 then return 11 end
  local written = redis.pcall('HLEN', parts)
  if type(written) == 'table' then return unreadable(parts, written) end
  if written ~= stage - 1 then return 'Estaged commit: ' .. parts .. ' holds ' .. written .. ' of ' .. (stage - 1) .. ' parts' end
  local taken = redis.pcall('SET', KEYS[4], ARGV[3])
  if type(taken) == 'table' and taken.err then return 'ESET ' .. KEYS[4] .. ': ' .. taken.err end
elseif part then
  -- A later part's first write is its place in the journal.
  local moved = redis.pcall('HINCRBY', journal, 'next', 1)
  if type(moved) == 'table' then return 'EHINCRBY ' .. journal .. ': ' .. moved.err end
else
-- The acknowledgement is the first write (see `acknowledge`).
local refused = acknowledge(KEYS[1], ARGV[1])
if refused then return refused end
-- The request_id is claimed: its guard and its write in one command. A request_id already
-- answered makes the commit stale (the next round replays that answer); the message then goes
-- back in flight, and nothing else was written.
if dedupe then
  local claimed = redis.pcall('SET', dedupe, (reply_list or '') .. '\n' .. ARGV[4], 'NX', 'EX', ARGV[7])
  if type(claimed) ~= 'table' or claimed.err then
    redis.call('LPUSH', KEYS[1], ARGV[1])
    if claimed then return unreadable(dedupe, claimed) end
    return 11
  end
end
end

local undeliverable, dropped
local ok, failure = pcall(function()
  if has('L') then must(redis.pcall('DEL', KEYS[4]), 'DEL') end
  local records = {}
  for i = 1, nr do records[#records + 1] = ARGV[p]; records[#records + 1] = ARGV[p + 1]; p = p + 2 end
  chunked('HSET', KEYS[2], records)
  for i = 0, ns - 1 do
    local n = tonumber(ARGV[p])
    local ids = {}
    for j = 1, n do ids[j] = ARGV[p + j] end
    chunked('SADD', KEYS[sets + i], ids)
    p = p + n + 1
  end
  local nb = tonumber(ARGV[p])
  local bumps = {}
  for j = 1, nb do bumps[#bumps + 1] = ARGV[p + j]; bumps[#bumps + 1] = ARGV[17] end
  chunked('HSET', KEYS[3], bumps)
  p = p + nb + 1
  for i = 0, na - 1 do
    local id, json, expires = ARGV[p], ARGV[p + 1], ARGV[p + 2]
    must(redis.pcall('SET', KEYS[approvals + i], json), 'SET')
    must(redis.pcall('ZADD', KEYS[8], expires, id), 'ZADD ' .. KEYS[8])
    must(redis.pcall('ZADD', KEYS[9], expires, id), 'ZADD ' .. KEYS[9])
    p = p + 3
  end
  for i = 0, np - 1 do
    local id, json, created = ARGV[p], ARGV[p + 1], ARGV[p + 2]
    must(redis.pcall('SET', KEYS[plans + i], json), 'SET')
    if now_plans then
      must(redis.pcall('SET', KEYS[queued + i], '1'), 'SET')
      must(redis.pcall('LPUSH', KEYS[7], id), 'LPUSH ' .. KEYS[7])
    else
      must(redis.pcall('ZADD', KEYS[6], created, id), 'ZADD ' .. KEYS[6])
    end
    p = p + 3
  end
  for i = 1, ne do
    emit_event(ARGV[8], KEYS[5], ARGV[9], ARGV[p], ARGV[p + 1])
    p = p + 2
  end
  if opening then
    must(redis.pcall('HSET', journal, 'next', '2', 'parts', ARGV[19], 'token', ARGV[3]), 'HSET ' .. journal)
    must(redis.pcall('PERSIST', parts), 'PERSIST ' .. parts)
    return
  end
  if part then must(redis.pcall('HDEL', parts, 'p' .. stage), 'HDEL ' .. parts) end
  if has('R') then
    -- "reply_list\nreply", the reply appended rather than joined (one copy fewer).
    local key = dedupe or marker
    must(redis.pcall('SET', key, (reply_list or '') .. '\n', 'EX', ARGV[7]), 'SET ' .. key)
    must(redis.pcall('APPEND', key, ARGV[4]), 'APPEND ' .. key)
    if seen then must(redis.pcall('SET', seen, '1', 'EX', ARGV[20]), 'SET ' .. seen) end
  end
  if part and not last then return end
  local reply = ARGV[4]
  if last then
    must(redis.pcall('LREM', KEYS[1], -1, ARGV[1]), 'LREM ' .. KEYS[1])
    must(redis.pcall('DEL', journal, parts), 'DEL ' .. journal)
    local stored = must(redis.pcall('GET', dedupe or marker), 'GET ' .. (dedupe or marker))
    if not stored then error('the reply stored by the part before is gone: ' .. (dedupe or marker), 0) end
    reply = string.sub(stored, #(reply_list or '') + 2)
  end
  if reply_list then
    undeliverable, dropped = deliver_reply(outbox, reply_list, reply, ARGV[5], ARGV[6], has('a') and '1' or '0')
  end
end)
if not ok and (opening or part) then
  -- A staged call wrote nothing it need take back but what failed: its journal stands.
  return 'E' .. tostring(failure)
end
if not ok then
  -- Nothing the checks above let through fails a write; should one all the same, the message
  -- goes back in flight and the failure is its own.
  redis.call('LPUSH', KEYS[1], ARGV[1])
  if dedupe then redis.call('DEL', dedupe) end
  return 'E' .. tostring(failure)
end
if undeliverable then return 'U' .. undeliverable end
if dropped and dropped > 0 then return -dropped end
return 1
