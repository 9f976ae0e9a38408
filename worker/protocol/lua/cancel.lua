-- Cancel a queued job: only the caller whose ZREM took it from ready/delayed marks it, so a
-- worker's fetch and a cancel never both win. A running job gets a cancel request instead.
-- KEYS: job, ready, delayed, cancel, stats   ARGV: id, now_ms, error_json, result_ttl_ms
-- (0: the cancelled job's hash goes at once)
-- Returns 'cancelled', 'requested', 'missing' or the status of a job that is neither.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1]) > 0 then
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
  if tonumber(ARGV[4]) == 0 then
    redis.call('DEL', KEYS[1])
    return 'cancelled'
  end
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  redis.call('HSET', KEYS[1], 'status', 'FAILED', 'finished_at', ARGV[2],
             'error:' .. (attempts + 1), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('HDEL', KEYS[1], 'lost')  -- a late outcome of the lost attempt must not revive it
  return 'cancelled'
end
if status == 'RUNNING' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[2], ARGV[1])
  return 'requested'
end
return status
