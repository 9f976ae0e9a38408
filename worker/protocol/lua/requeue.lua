--! uses: clock, wake, each, ready, upgrade
-- Put every job leased to one worker back on the queue, at the front of its ready list.
-- mode 'lost': the worker died; the attempt counts and is recorded with ARGV[4] as its error,
--   and a job out of attempts goes to the dead letters (so a job that kills its worker
--   every time cannot loop forever). The job is marked 'lost' with the attempt, for ACK to
--   tell a late outcome of a worker taken for dead from a replayed one.
-- mode 'released': the worker is shutting down; the attempt does not count.
-- With ids after ARGV[4], only those of the worker's leases (still leased) go back, as
-- 'released': leases a live worker holds but never ran (the reply of their FETCH was lost).
-- A worker of the previous protocol (0.1) held its leases in a set (legacy wip): those go
-- back too, their hashes upgraded.
-- KEYS: leases (that worker's), ready, priorities, dead, workers, notify, stats, legacy wip
-- ARGV: job_key_prefix, worker_id, mode, error_json[, id...]
-- Returns {requeued, dead}
local now, jobp, wid, mode = clock(), ARGV[1], ARGV[2], ARGV[3]
local back, dead = 0, 0
local ids = {}
if #ARGV > 4 then
  for i = 5, #ARGV do
    if redis.call('HDEL', KEYS[1], ARGV[i]) + redis.call('SREM', KEYS[8], ARGV[i]) > 0 then
      ids[#ids + 1] = ARGV[i]
    end
  end
else
  ids = redis.call('HKEYS', KEYS[1])
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[8])) do ids[#ids + 1] = id end
  redis.call('DEL', KEYS[1], KEYS[8])
  redis.call('SREM', KEYS[5], wid)
end
local front = {}  -- priority -> ids
for _, id in ipairs(ids) do
  local key = jobp .. id
  local f = redis.call('HMGET', key, 'm', 'a', 'n', 'w', 'p')
  if not f[1] and upgrade(key) then f = redis.call('HMGET', key, 'm', 'a', 'n', 'w', 'p') end
  if f[1] then
    local attempts = tonumber(f[2] or '1')
    if mode == 'released' then
      redis.call('HINCRBY', key, 'a', -1)
      local wids = f[4] or ''
      local cut = #wids - #wid
      if cut == 0 and wids == wid then
        redis.call('HDEL', key, 'w')
      elseif cut > 0 and string.sub(wids, cut) == ',' .. wid then
        redis.call('HSET', key, 'w', string.sub(wids, 1, cut - 1))
      end
    else
      redis.call('HSET', key, 'error:' .. attempts, ARGV[4], 'lost', attempts)
    end
    if mode == 'lost' and attempts >= tonumber(f[3] or '1') then
      redis.call('HSET', key, 's', 'F', 'f', now)
      redis.call('ZADD', KEYS[4], now, id)
      dead = dead + 1
    else
      redis.call('HSET', key, 's', 'Q')
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
if back > 0 then wake(KEYS[6]) end
return {back, dead}
