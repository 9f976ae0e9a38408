--! uses: clock, wake, each, ready, job, upgrade, flow, tell, workflow
-- Put every job leased to one worker back on the queue, at the front of its ready list.
-- mode 'lost': the worker died; the attempt counts, and its record is written as ACK would
--   have (attempts, starts, worker ids) with ARGV[4] as its error; a job out of attempts
--   goes to the dead letters (so a job that kills its worker every time cannot loop
--   forever). The job is marked 'lost' with the attempt, for ACK to tell a late outcome of
--   a worker taken for dead from a replayed one.
-- mode 'released': the worker is shutting down; the attempt does not count.
-- Either way, a workflow's step that its workflow asked to stop ends as cancelled instead
-- (lua/workflow.lua's stopping()).
-- With ids after ARGV[4], only those of the worker's leases (still leased) go back, as
-- 'released': leases a live worker holds but never ran (the reply of their FETCH was lost).
-- A worker of the previous protocol (0.1) held its leases in a set (legacy wip), its jobs
-- at 0.1's keys: those go back too, upgraded.
-- A lease that counted in a limit group gives its slot back (docs/protocol.md, "Flow
-- control"), whatever the mode.
-- KEYS: leases (that worker's), ready, priorities, dead, workers, notify, stats, legacy wip,
--   running, gates
-- ARGV: job_key_prefix, worker_id, mode, error_json[, id...]
-- Returns {requeued, dead, tasks requeued, tasks dead}: the last two (mode 'lost' only) list
-- the task path of each job whose attempt was lost, as its message names it ('' for a
-- message that does not start as enqueue writes it), for the worker's metrics.
local now, jobp, wid, mode = clock(), ARGV[1], ARGV[2], ARGV[3]
local back, dead, over, how = 0, 0, {}, {}  -- over, how: the jobs that end here, F or C
local retried, failed = {}, {}  -- mode 'lost': the tasks of the jobs requeued, dead-lettered
local held = {}  -- {id, lease ("attempt started_ms"), or false for a 0.1 lease}
if #ARGV > 4 then
  for i = 5, #ARGV do
    local lease = redis.call('HGET', KEYS[1], ARGV[i])
    if lease then
      redis.call('HDEL', KEYS[1], ARGV[i])
      held[#held + 1] = {ARGV[i], lease}
    elseif redis.call('SREM', KEYS[8], ARGV[i]) == 1 then
      held[#held + 1] = {ARGV[i], false}
    end
  end
else
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do held[#held + 1] = {all[i], all[i + 1]} end
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[8])) do held[#held + 1] = {id, false} end
  redis.call('DEL', KEYS[1], KEYS[8])
  redis.call('SREM', KEYS[5], wid)
end
local front, slots = {}, {}  -- priority -> ids; group -> slots freed
for _, lease in ipairs(held) do
  local id, value = lease[1], lease[2]
  local g = value and lease_group(value)
  if g then slots[g] = (slots[g] or 0) + 1 end
  local key = job(jobp, id)
  if not value then upgrade(jobp, id) end
  local f = redis.call('HMGET', key, 'm', 'a', 'n', 'w', 'p', 't')
  if f[1] then
    local attempt, started
    if value then
      attempt, started = string.match(value, '^(%d+) (%d+)')
      attempt = tonumber(attempt)
    else
      attempt = tonumber(f[2] or '1')  -- 0.1 counted it, and noted its start and worker
    end
    if mode == 'released' then
      if not value then
        -- 0.1 counted the attempt and noted the worker when it began: undone
        redis.call('HSET', key, 'a', attempt - 1)
        local wids = f[4] or ''
        local cut = #wids - #wid
        if cut == 0 and wids == wid then
          redis.call('HDEL', key, 'w')
        elseif cut > 0 and string.sub(wids, cut) == ',' .. wid then
          redis.call('HSET', key, 'w', string.sub(wids, 1, cut - 1))
        end
      elseif attempt > 1 then
        redis.call('HSET', key, 'a', attempt - 1)  -- FETCH noted a second attempt's number
      end
    else
      local fields = {'error:' .. attempt, ARGV[4], 'lost', attempt}
      if value then
        local wids = f[4] and (f[4] .. ',' .. wid) or wid
        local at = since(id, started)
        for _, v in ipairs({'a', attempt, 'l', at, 'w', wids}) do fields[#fields + 1] = v end
        if not f[6] then
          fields[#fields + 1] = 't'
          fields[#fields + 1] = at
        end
      end
      redis.call('HSET', key, unpack(fields))
    end
    local task = mode == 'lost' and (string.match(f[1], '^{"task":"([^"]*)"') or '')
    if stopping(jobp, id, mode == 'lost' and attempt or attempt - 1, now) then
      -- a workflow's step that its workflow asked to stop: cancelled, not put back
      over[#over + 1] = id
      how[#over] = 'C'
    elseif mode == 'lost' and attempt >= tonumber(f[3] or '1') then
      redis.call('HSET', key, 's', 'F', 'f', since(id, now))
      redis.call('ZADD', KEYS[4], now, id)
      dead = dead + 1
      over[#over + 1] = id
      how[#over] = 'F'
      failed[#failed + 1] = task
    else
      if task then retried[#retried + 1] = task end
      if not value or mode == 'lost' then redis.call('HSET', key, 's', 'Q') end
      local p = tonumber(f[5] or '0')
      local list = front[p] or {}
      list[#list + 1] = id
      front[p] = list
      back = back + 1
    end
  end
end
for p, list in pairs(front) do push(KEYS[2], KEYS[3], p, list, true) end
if mode == 'lost' then
  if back + dead > 0 then redis.call('HINCRBY', KEYS[7], 'lost', back + dead) end
  if dead > 0 then redis.call('HINCRBY', KEYS[7], 'failed', dead) end
end
-- dead-lettered (or stopped): the processes waiting for them are told (cancelled() told
-- them of the stopped), their workflows move on, once the rest is back in place
tell(jobp, 'end', over)
settle(jobp, over, how, {}, now)
local freed = give_back(flow(jobp, '', KEYS[9], KEYS[10], now), slots)
if back > 0 or freed then wake(KEYS[6]) end
return {back, dead, retried, failed}
