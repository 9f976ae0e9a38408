--! uses: clock, each, ready, job
-- What the metrics view reads of one queue (worker/observe/cluster.py), in one call and a
-- bounded number of commands whatever the number of jobs: the jobs ready, delayed, of those
-- retrying (only with at most `split` delayed: each one's attempts are read), dead and
-- running, and how long the job at the head of the ready lists has been ready. Writes
-- nothing.
-- KEYS: ready, priorities, later, dead, workers, legacy ready, legacy delayed
-- ARGV: job_key_prefix, leases_key_prefix, split
-- Returns {ready, delayed, retrying (false: more than split delayed), dead, running, ms the
--   longest-waiting head of a ready list has been ready (false: none is ready)}.
local now, jobp, leasep, split = clock(), ARGV[1], ARGV[2], tonumber(ARGV[3])
local ready, oldest = redis.call('ZCARD', KEYS[6]), false
for _, list in ipairs(lists(KEYS[1], KEYS[2])) do
  ready = ready + redis.call('LLEN', list[1])
  local id = redis.call('LINDEX', list[1], 0)
  if id then
    -- Ready since its enqueue, its run_after, or the start of its latest attempt (a retry,
    -- or a job put back): the latest of the three.
    local f = redis.call('HMGET', job(jobp, id), 'r', 'l', 't')
    local enqueued = tonumber(string.sub(token(id), 1, 11), 16)
    local since = math.max(enqueued, tonumber(f[1] or 0), enqueued + tonumber(f[2] or f[3] or 0))
    if not oldest or since < oldest then oldest = since end
  end
end
local delayed = redis.call('ZCARD', KEYS[3])
local retrying = false
if delayed <= split then
  retrying = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if tonumber(redis.call('HGET', job(jobp, id), 'a') or 0) > 0 then retrying = retrying + 1 end
  end
end
local running = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  running = running + redis.call('HLEN', leasep .. w)
end
return {ready, delayed + redis.call('ZCARD', KEYS[7]), retrying, redis.call('ZCARD', KEYS[4]),
  running, oldest and math.max(now - oldest, 0)}
