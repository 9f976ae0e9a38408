--! uses: clock, wake, each, ready, job, upgrade
-- Move due delayed jobs to the back of their ready lists, then lease up to `count` ready
-- jobs to this worker, whose messages come to at most `byte_budget` bytes: the rest go back
-- to the front, in order. With `idle` '1' (the worker runs nothing) the first is leased
-- whatever its size, so that any job runs. Jobs the previous protocol left queued (its
-- `ready` and `delayed` sorted sets) are taken over first, up to 1,000 a call.
-- A lease is the entry id -> "attempt started_ms" in this worker's `leases`: the job's hash
-- is read, not written (the attempt is written there when it ends), except for a job that
-- ran before, whose hash takes the attempt now so that an outcome of an earlier attempt
-- arriving late is known for stale.
-- KEYS: ready, priorities, later, leases (this worker's), workers, notify, legacy ready,
--   legacy delayed
-- ARGV: count, worker_id, job_key_prefix, byte_budget, idle
-- Returns {{id, message, attempt, worker_ids, first start (ms after the enqueue; false:
--   none yet), max_attempts}...,
--   ms until the next delayed job is due (false: none), now_ms (Redis's clock), how many
--   were left for the budget}. Writes that may grow memory come after one that cannot
--   (ZREM, LPOP): out of memory, Redis refuses a script's first such write only.
local now, count, wid, jobp = clock(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
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
local out, leases, budget, back, back_priorities = {}, {}, tonumber(ARGV[4]), {}, {}
local ids, priorities, lists = pop(KEYS[1], KEYS[2], count)
for i, id in ipairs(ids) do
  local key = job(jobp, id)
  local f = false  -- false: not leased, it goes back
  if #back == 0 then
    f = redis.call('HMGET', key, 'm', 'w', 't', 'n', 'a')
    if f[1] and #f[1] > budget and not (ARGV[5] == '1' and #leases == 0) then f = false end
  end
  if not f then
    back[#back + 1] = id
    back_priorities[#back_priorities + 1] = priorities[i]
  elseif f[1] then
    budget = budget - #f[1]
    local attempt = tonumber(f[5] or '0') + 1
    local wids = f[2] and (f[2] .. ',' .. wid) or wid
    if attempt > 1 then redis.call('HSET', key, 'a', attempt) end
    leases[#leases + 1] = id
    leases[#leases + 1] = attempt .. ' ' .. now
    out[#out + 1] = {id, f[1], attempt, wids, f[3] or false, f[4]}
  else
    -- the id outlived its job (purged or expired): nothing to run
    out[#out + 1] = {id, false}
  end
end
for i = #back, 1, -1 do push(KEYS[1], KEYS[2], back_priorities[i], {back[i]}, true) end
if #leases > 0 then
  each('HSET', KEYS[4], leases)
  redis.call('SADD', KEYS[5], wid)
end
-- more is waiting than this worker took: wake another idle worker
if (#ids == count or #back > 0) and waiting(lists) > 0 then wake(KEYS[6]) end
local due_in = false
for _, later in ipairs(legacy and {KEYS[3], KEYS[8]} or {KEYS[3]}) do
  local nxt = redis.call('ZRANGE', later, 0, 0, 'WITHSCORES')
  if nxt[2] and (not due_in or tonumber(nxt[2]) - now < due_in) then
    due_in = tonumber(nxt[2]) - now
  end
end
return {out, due_in, now, #back}
