--! uses: clock, wake, each, ready, job, upgrade, flow
-- Move due delayed jobs to the back of their ready lists, then lease up to `count` ready
-- jobs to this worker, whose messages come to at most `byte_budget` bytes: the rest go back
-- to the front, in order. With `idle` '1' (the worker runs nothing) the first is leased
-- whatever its size, so that any job runs. Jobs the previous protocol left queued (its
-- `ready` and `delayed` sorted sets) are taken over first, up to 1,000 a call.
-- A lease is the entry id -> "attempt started_ms" in this worker's `leases`: the job's hash
-- is read, not written (the attempt is written there when it ends), except for a job that
-- ran before, whose hash takes the attempt now so that an outcome of an earlier attempt
-- arriving late is known for stale.
-- A paused queue (its `paused` key exists: an operator's `jobs pause`) leases nothing and
-- moves nothing: the call returns at once, saying so (the worker then waits on the list a
-- resume wakes, not on `notify`, which every enqueue fills again).
-- KEYS: ready, priorities, later, leases (this worker's), workers, notify, legacy ready,
--   legacy delayed, limits, running, gates, paused
-- ARGV: count, worker_id, job_key_prefix, byte_budget, idle
-- Returns {{id, message, attempt, worker_ids, first start (ms after the enqueue; false:
--   none yet), max_attempts}...,
--   ms until the next delayed job is due (false: none), now_ms (Redis's clock), how many
--   were left for the budget, 1 if the queue is paused (else 0)}. Writes that may grow
--   memory come after one that cannot (ZREM, LPOP): out of memory, Redis refuses a
--   script's first such write only.
local now, count, wid, jobp = clock(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[12]) == 1 then return {{}, false, now, 0, 1} end
local function join(ids)  -- due or taken-over ids join the back of their priority's list
  local by = {}
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', job(jobp, id), 'm', 'p')
    if f[1] then
      local p = tonumber(f[2] or '0')
      local list = by[p] or {}
      list[#list + 1] = id
      by[p] = list
    end
  end
  for p, list in pairs(by) do push(KEYS[1], KEYS[2], p, list, false) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  each('ZREM', KEYS[3], due)
  join(due)
end
local legacy = redis.call('EXISTS', KEYS[7], KEYS[8]) > 0
if legacy then
  local taken = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 1000)
  each('ZREM', KEYS[8], taken)
  local ready = redis.call('ZPOPMIN', KEYS[7], 1000)
  for i = 1, #ready, 2 do taken[#taken + 1] = ready[i] end
  for _, id in ipairs(taken) do upgrade(jobp, id) end
  join(taken)
end
local F = flow(jobp, KEYS[9], KEYS[10], KEYS[11], now)
local out, leases, budget, back, back_priorities = {}, {}, tonumber(ARGV[4]), {}, {}
local idle = ARGV[5] == '1'
-- lease(id, free): lease the job, unless it is over the byte budget ('budget') or a limit
-- of its group holds it ('held'); 'ended': its workflow cancelled it (lua/workflow.lua);
-- 'gone': it outlived its hash (purged or expired),
-- nothing to run. `free`: its group's limits were asked already (a held job let go).
local function lease(id, free)
  local key = job(jobp, id)
  local f = redis.call('HMGET', key, 'm', 'w', 't', 'n', 'a', 'k', 'x')
  if not f[1] then
    out[#out + 1] = {id, false}
    return 'gone'
  end
  if f[7] then return 'ended' end  -- its workflow cancelled it where it waited
  if #f[1] > budget and not (idle and #leases == 0) then return 'budget' end
  local g = f[6]
  if g then
    local s = not free and limits_of(F, g)
    if s then
      local when = gated(F, g) or blocked(F, g, s)
      if when then
        hold(F, g, id, when)
        return 'held'
      end
    end
    take(F, g)
  end
  budget = budget - #f[1]
  local attempt = tonumber(f[5] or '0') + 1
  local wids = f[2] and (f[2] .. ',' .. wid) or wid
  if attempt > 1 then redis.call('HSET', key, 'a', attempt) end
  leases[#leases + 1] = id
  leases[#leases + 1] = g and (attempt .. ' ' .. now .. ' ' .. g) or (attempt .. ' ' .. now)
  out[#out + 1] = {id, f[1], attempt, wids, f[3] or false, f[4]}
  return 'leased'
end
-- Held jobs whose group may start again go first, oldest first: they waited.
local room = function() return count - #leases / 2 end
local over = 0  -- held jobs left for the budget
-- Jobs looked at that took no room (held, or cancelled by their workflow): a thousand a
-- call at most, the next call goes on.
local looked = 0
for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now, 'LIMIT', 0, 100)) do
  local held = jobp .. 'held:' .. g
  F.gated[g] = true
  while room() > 0 and looked < 1000 do
    local s = limits_of(F, g)
    local when = s and blocked(F, g, s)
    if when then
      -- ZREM first: out of memory, Redis refuses a script's first write that may grow
      -- memory, and a gate left due would have idle workers fetch without pause
      redis.call('ZREM', KEYS[11], g)
      redis.call('ZADD', KEYS[11], when == math.huge and '+inf' or when, g)
      if when ~= math.huge then F.armed = true end
      break
    end
    local id = redis.call('LPOP', held)
    if not id then
      redis.call('ZREM', KEYS[11], g)
      F.gated[g] = false
      break
    end
    local got = lease(id, true)
    if got == 'budget' then
      redis.call('LPUSH', held, id)
      over = over + 1
      break
    elseif got == 'ended' then
      looked = looked + 1
    end
  end
end
-- Then the ready lists. A job its limit holds leaves them for its group's held list, so
-- the jobs behind it are looked at in the same call: a limited task does not hold up the
-- others (a thousand held a call at most; the next call goes on). So does one its workflow
-- cancelled where it waited.
local found = {}
while room() > 0 and #back == 0 and looked < 1000 do
  local held_some, ids, priorities = false, nil, nil
  ids, priorities, found = pop(KEYS[1], KEYS[2], room())
  looked = looked + #ids
  for i, id in ipairs(ids) do
    local got = #back == 0 and lease(id, false) or 'budget'
    if got == 'budget' then
      back[#back + 1] = id
      back_priorities[#back_priorities + 1] = priorities[i]
    elseif got == 'held' or got == 'ended' then
      held_some = true  -- it took no room: look further
    end
  end
  if not held_some then break end
end
for i = #back, 1, -1 do push(KEYS[1], KEYS[2], back_priorities[i], {back[i]}, true) end
commit(F)
if #leases > 0 then
  each('HSET', KEYS[4], leases)
  redis.call('SADD', KEYS[5], wid)
end
-- More is waiting than this worker took, or it stopped looking (1,000 held), or it set a
-- limit group's next permit time while it has no room to start it: wake another idle
-- worker (a probe of count 0 leaves due gates to the worker it tells: its first write
-- would be this one, which Redis refuses out of memory).
if room() <= 0 or #back > 0 or looked >= 1000 then
  local due_gate = count > 0
    and #redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now, 'LIMIT', 0, 1) > 0
  if due_gate or F.armed or waiting(#found > 0 and found or lists(KEYS[1], KEYS[2])) > 0 then
    wake(KEYS[6])
  end
end
local due_in = false
for _, later in ipairs(legacy and {KEYS[3], KEYS[8], KEYS[11]} or {KEYS[3], KEYS[11]}) do
  local nxt = redis.call('ZRANGE', later, 0, 0, 'WITHSCORES')
  local at = nxt[2] and tonumber(nxt[2])
  if at and at ~= math.huge and (not due_in or at - now < due_in) then due_in = at - now end
end
return {out, due_in, now, #back + over, 0}
