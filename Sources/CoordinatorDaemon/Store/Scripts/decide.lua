-- decide.lua: commits one approval decision (PROTOCOL.md section 3) on an approval the daemon
-- read: its new state (a vote that leaves it pending, approved, rejected, or expired because the
-- decision came late), what follows (an approved recommendation gets its plan, created queued
-- or held; a rejected or expired one leaves the active set, its indexes and its waiters), the
-- events, the reply, the dead letter of a decision the rules refuse as malformed, the replay
-- mark of a signed decision, and the acknowledgement of the message, all at once; only if the
-- approval is still exactly as read (and a signed decision's mark still absent).
--
-- KEYS[1] the message's in-flight list      KEYS[2] the approval
-- KEYS[3] pending approvals (zset)          KEYS[4] the customer's pending approvals (zset)
-- KEYS[5] the event stream                  KEYS[6] the customer's active hash
-- KEYS[7] the customer's versions hash      KEYS[8] ready plans (list)
-- KEYS[9] held plans (zset)
-- then, as ARGV[2] says: 's' the signed decision's replay mark; 'd' the dead-letter list;
-- 'o' the outbox (on a Redis Cluster the reply goes there as "reply_list\nreply", section 11);
-- 'p' the new plan, and with 'x' its queued marker; 'r' the retired recommendation's key,
-- its waiters set, then ARGV[22] index sets it leaves.
-- The approval's keys carry its tag {<approval id>}, the plan's {<plan id>}, the customer's
-- {<customer>}; on one Redis the call also writes the in-flight list, the stream, the plan and
-- approval indexes and the dead-letter list (docs/SCRIPTS.md). The reply list alone is not
-- among the KEYS (ARGV[11]): a script's declared keys need read and write access, and the
-- daemon's Redis user may only write reply lists (deploy/redis/users.acl).
--
-- ARGV[1] the message (acknowledged by LREM)
-- ARGV[2] flags: 's' a replay mark, 'd' a dead letter, 'o' an outbox, 'a' every reply list is capped (a reply
--         prefix is set), 'f' the approval is final (it leaves the pending indexes),
--         'u' the recommendation's active record is replaced (approved), 'p' a plan is created,
--         'x' it starts at once, 'r' the recommendation is retired (rejected, expired)
-- ARGV[3] the SHA-1 (hex) of the approval as read (the guard)
-- ARGV[4] the approval id, ARGV[5] its new JSON ('' when the decision changes nothing)
-- ARGV[6] the recommendation id, ARGV[7] its record (active with 'u', kept --retention with 'r';
--         '' for none)
-- ARGV[8] the reply, ARGV[9] reply TTL, ARGV[10] reply cap, ARGV[11] the reply list ('' none)
-- ARGV[12] the event channel, ARGV[13] the stream's MAXLEN, ARGV[14] the event count
-- ARGV[15] the replay mark's TTL, ARGV[16] the dead letter, ARGV[17] the dead-letter cap
-- ARGV[18] --retention (s)
-- ARGV[19] the plan id, ARGV[20] its JSON, ARGV[21] its creation (ms)
-- ARGV[22] the count of index sets, then the versions field of each, then events (type, json).
--
-- Returns 1 applied; -n applied, n older replies cut by the reply list's cap; "U" and Redis's
-- error: applied, the reply could not be pushed; 0 the message is no longer in flight (another
-- worker took it over); 11 a guard failed (read and decide again); "E" and the error: a guard
-- Redis could not read, a key of the wrong type, or a write that failed (nothing written, the
-- message left in flight).
local flags = ARGV[2]
local function has(c) return string.find(flags, c, 1, true) ~= nil end
local k = 10
local seen, dead, plan, queued, retired, waiters
if has('s') then seen = KEYS[k]; k = k + 1 end
if has('d') then dead = KEYS[k]; k = k + 1 end
local outbox
if has('o') then outbox = KEYS[k]; k = k + 1 end
if has('p') then
  plan = KEYS[k]; k = k + 1
  if has('x') then queued = KEYS[k]; k = k + 1 end
end
if has('r') then retired = KEYS[k]; waiters = KEYS[k + 1]; k = k + 2 end
local sets = k
local ns, ne = tonumber(ARGV[22]), tonumber(ARGV[14])
local fields, events = 23, 23 + ns
local reply_list = ARGV[11] ~= '' and ARGV[11] or nil
local approval_json, record = ARGV[5], ARGV[7]

-- Guards, read only.
local function unreadable(key, reply) return 'Eguard ' .. key .. ': ' .. reply.err end
local stored = redis.pcall('GET', KEYS[2])
if type(stored) == 'table' then return unreadable(KEYS[2], stored) end
if not stored or redis.sha1hex(stored) ~= ARGV[3] then return 11 end
if seen then
  local mark = redis.pcall('GET', seen)
  if type(mark) == 'table' then return unreadable(seen, mark) end
  if mark then return 11 end
end
-- Types, before the first write.
local bad = (has('f') and (misfit(KEYS[3], 'zset') or misfit(KEYS[4], 'zset')))
  or (ne > 0 and misfit(KEYS[5], 'stream'))
  or ((has('u') or has('r')) and misfit(KEYS[6], 'hash'))
  or (plan and (queued and misfit(KEYS[8], 'list') or (not queued and misfit(KEYS[9], 'zset'))))
  or (retired and (misfit(waiters, 'set') or misfit(KEYS[8], 'list') or (ns > 0 and misfit(KEYS[7], 'hash'))))
  or (dead and misfit(dead, 'list'))
  or (outbox and misfit(outbox, 'list'))
for i = 0, ns - 1 do bad = bad or misfit(KEYS[sets + i], 'set') end
if bad then return 'E' .. bad end

-- The acknowledgement is the first write (see `acknowledge`).
local refused = acknowledge(KEYS[1], ARGV[1])
if refused then return refused end

local undeliverable, dropped
local ok, failure = pcall(function()
  if approval_json ~= '' then
    must(redis.pcall('SET', KEYS[2], approval_json), 'SET ' .. KEYS[2])
    if has('f') then
      must(redis.pcall('ZREM', KEYS[3], ARGV[4]), 'ZREM ' .. KEYS[3])
      must(redis.pcall('ZREM', KEYS[4], ARGV[4]), 'ZREM ' .. KEYS[4])
    end
  end
  if has('u') and record ~= '' then
    must(redis.pcall('HSET', KEYS[6], ARGV[6], record), 'HSET ' .. KEYS[6])
  end
  if plan then
    create_plan(plan, queued, KEYS[8], KEYS[9], ARGV[19], ARGV[20], ARGV[21], queued ~= nil)
  end
  if retired then
    must(redis.pcall('HDEL', KEYS[6], ARGV[6]), 'HDEL ' .. KEYS[6])
    for i = 0, ns - 1 do unindex(KEYS[sets + i], ARGV[6], KEYS[7], ARGV[fields + i]) end
    if record ~= '' then must(redis.pcall('SET', retired, record, 'EX', ARGV[18]), 'SET ' .. retired) end
    must(redis.pcall('EXPIRE', KEYS[2], ARGV[18]), 'EXPIRE ' .. KEYS[2])
    wake(waiters, KEYS[8])
  end
  for i = 0, ne - 1 do
    emit_event(ARGV[12], KEYS[5], ARGV[13], ARGV[events + 2 * i], ARGV[events + 2 * i + 1])
  end
  if seen then must(redis.pcall('SET', seen, '1', 'EX', ARGV[15]), 'SET ' .. seen) end
  if dead then dead_letter(dead, ARGV[17], ARGV[16]) end
  if reply_list then
    undeliverable, dropped = deliver_reply(outbox, reply_list, ARGV[8], ARGV[9], ARGV[10], has('a') and '1' or '0')
  end
end)
if not ok then
  -- Nothing the checks above let through fails a write; should one all the same, the message
  -- goes back in flight and the failure is its own.
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 'E' .. tostring(failure)
end
if undeliverable then return 'U' .. undeliverable end
if dropped and dropped > 0 then return -dropped end
return 1
