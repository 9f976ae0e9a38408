--! uses: clock, ready, job, tell, workflow
-- Delete jobs for good, with their hashes, wherever they wait or lie finished: a ready
-- list, a limit group's held jobs, later, dead, and the lists of the latest successes and
-- cancellations. A running job (neither waiting nor finished: its state is in a lease) is
-- left alone; cancel it first. Removing a ready or held job scans its list, as CANCEL does
-- (an operator's action, not a hot path). The processes waiting for a job deleted are told
-- it ended, as CANCEL tells them (they find it gone). A workflow's step deleted before it
-- ended counts as cancelled, for its workflow (lua/workflow.lua).
-- KEYS: ready, later, dead, finished, cancelled, gates
-- ARGV: job_key_prefix, id...
-- Returns how many were deleted.
local jobp, n, deleted = ARGV[1], 0, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = job(jobp, id)
  local f = redis.call('HMGET', key, 'm', 's', 'p', 'v', 'k', 'b')
  local removed = redis.call('ZREM', KEYS[2], id) + redis.call('ZREM', KEYS[3], id)
  if f[6] then removed = 1 end  -- a workflow's step waiting for others: on no list
  if f[1] and removed == 0 and not f[4] and f[2] ~= 'F' then
    removed = redis.call('LREM', level(KEYS[1], tonumber(f[3] or '0')), 1, id)
    if removed == 0 and f[5] then
      local held = jobp .. 'held:' .. f[5]
      removed = redis.call('LREM', held, 1, id)
      if removed > 0 and redis.call('EXISTS', held) == 0 then redis.call('ZREM', KEYS[6], f[5]) end
    end
  end
  local finished = not f[1] or f[4] or f[2] == 'F'
  if finished then
    removed = removed + redis.call('LREM', KEYS[4], 1, id) + redis.call('LREM', KEYS[5], 1, id)
  end
  if removed > 0 or (f[1] and finished) then
    redis.call('DEL', key)
    n = n + 1
    deleted[n] = id
  end
end
tell(jobp, 'end', deleted)
local how = {}
for i = 1, n do how[i] = 'C' end
settle(jobp, deleted, how, {}, clock())  -- a step deleted counts as cancelled
return n
