--! uses: clock, wake, each
-- Move due delayed jobs to ready, then lease up to `count` ready jobs to this worker, whose
-- payloads come to at most `byte_budget` bytes: the rest go back in place. With `idle` '1'
-- (the worker runs nothing) the first is leased whatever its size, so that any job runs.
-- KEYS: ready, delayed, wip (this worker's), workers, notify
-- ARGV: count, worker_id, job_key_prefix, byte_budget, idle
-- Returns {{id, payload, attempts, worker_ids, enqueued_at, started_at, max_attempts}...,
--   ms until the next delayed job is due (false: none), now_ms (Redis's clock), how many
--   were left for the budget}. Writes that may grow memory come after one that cannot
--   (ZREM, ZPOPMIN): out of memory, Redis refuses a script's first such write only.
local now, count, wid, jobp = clock(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local score = redis.call('HGET', jobp .. id, 'score')
  redis.call('ZREM', KEYS[2], id)
  if score then redis.call('ZADD', KEYS[1], score, id) end
end
local out, leased, budget, back = {}, {}, tonumber(ARGV[4]), {}
local popped = redis.call('ZPOPMIN', KEYS[1], count)
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = jobp .. id
  local f = false  -- false: not leased, it goes back
  if #back == 0 then
    f = redis.call('HMGET', key, 'payload', 'worker_ids', 'enqueued_at', 'started_at',
                   'max_attempts', 'attempts')
    if f[1] and #f[1] > budget and not (ARGV[5] == '1' and #leased == 0) then f = false end
  end
  if not f then
    back[#back + 1] = popped[i + 1]
    back[#back + 1] = id
  elseif f[1] then
    budget = budget - #f[1]
    local attempts = tonumber(f[6] or '0') + 1
    local wids = f[2] and (f[2] .. ',' .. wid) or wid
    local started = f[4] or now
    redis.call('HSET', key, 'status', 'RUNNING', 'attempts', attempts,
               'last_attempted_at', now, 'started_at', started, 'worker_ids', wids)
    leased[#leased + 1] = id
    out[#out + 1] = {id, f[1], attempts, wids, f[3], started, f[5]}
  else
    -- the id outlived its job (purged or expired): nothing to run
    out[#out + 1] = {id, false}
  end
end
if #back > 0 then each('ZADD', KEYS[1], back) end
if #leased > 0 then
  each('SADD', KEYS[3], leased)
  redis.call('SADD', KEYS[4], wid)
end
-- more is waiting than this worker took: wake another idle worker
if redis.call('ZCARD', KEYS[1]) > 0 then wake(KEYS[5]) end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {out, nxt[2] and (tonumber(nxt[2]) - now) or false, now, #back / 2}
