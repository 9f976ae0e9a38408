--! uses: wake
-- store(): a new job's hash; true unless it exists already. The scripts that enqueue one
-- job take it as KEYS[1..3] = job, ready or delayed, notify and ARGV[1..8] = id, payload,
-- priority, score, max_attempts, enqueued_ms, run_after_ms or '', rank (its score in ready,
-- or its due time in delayed); store_argv() stores that job, ranks it and wakes a worker.
local function store(key, _id, payload, priority, score, max_attempts, enqueued, run_after)
  -- A job is written once: a replayed call (its reply was lost) must not reset it.
  if redis.call('EXISTS', key) == 1 then return false end
  redis.call('HSET', key, 'payload', payload, 'priority', priority, 'score', score,
             'max_attempts', max_attempts, 'status', 'READY', 'attempts', 0,
             'enqueued_at', enqueued)
  if run_after ~= '' then redis.call('HSET', key, 'run_after', run_after) end
  return true
end
local function store_argv()
  if store(KEYS[1], unpack(ARGV, 1, 7)) then
    redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
    wake(KEYS[3])
  end
end
