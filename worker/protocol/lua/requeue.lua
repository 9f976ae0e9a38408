--! uses: clock, wake
-- Put every job leased to one worker back on the queue.
-- mode 'lost': the worker died; the attempt counts and is recorded with ARGV[4] as its error,
--   and a job out of attempts goes to the dead letters (so a job that kills its worker
--   every time cannot loop forever). The job is marked 'lost' with the attempt, for ACK to
--   tell a late outcome of a worker taken for dead from a replayed one.
-- mode 'released': the worker is shutting down; the attempt does not count.
-- With ids after ARGV[4], only those of the worker's leases (still leased) go back, as
-- 'released': leases a live worker holds but never ran (the reply of their FETCH was lost).
-- KEYS: wip (that worker's), ready, dead, workers, notify, stats
-- ARGV: job_key_prefix, worker_id, mode, error_json[, id...]
-- Returns {requeued, dead}
local now, jobp, wid, mode = clock(), ARGV[1], ARGV[2], ARGV[3]
local back, dead = 0, 0
local ids = {}
if #ARGV > 4 then
  for i = 5, #ARGV do
    if redis.call('SREM', KEYS[1], ARGV[i]) == 1 then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[4], wid)
end
for _, id in ipairs(ids) do
  local key = jobp .. id
  local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'score', 'worker_ids')
  if f[3] then
    local attempts = tonumber(f[1] or '1')
    if mode == 'released' then
      redis.call('HINCRBY', key, 'attempts', -1)
      local wids = f[4] or ''
      local cut = #wids - #wid
      if cut == 0 and wids == wid then
        redis.call('HDEL', key, 'worker_ids')
      elseif cut > 0 and string.sub(wids, cut) == ',' .. wid then
        redis.call('HSET', key, 'worker_ids', string.sub(wids, 1, cut - 1))
      end
    else
      redis.call('HSET', key, 'error:' .. attempts, ARGV[4], 'lost', attempts)
    end
    if mode == 'lost' and attempts >= tonumber(f[2] or '1') then
      redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
      redis.call('ZADD', KEYS[3], now, id)
      dead = dead + 1
    else
      redis.call('HSET', key, 'status', 'READY')
      redis.call('ZADD', KEYS[2], f[3], id)
      back = back + 1
    end
  end
end
if mode == 'lost' then
  if back + dead > 0 then redis.call('HINCRBY', KEYS[6], 'lost', back + dead) end
  if dead > 0 then redis.call('HINCRBY', KEYS[6], 'failed', dead) end
end
if back > 0 then wake(KEYS[5]) end
return {back, dead}
