--! uses: wake
-- Send dead-lettered jobs back to ready, each with a fresh set of attempts.
-- KEYS: dead, ready, notify, cancel
-- ARGV: job_key_prefix, then per job: id, attempts to allow on top of those used
-- Returns how many were requeued (ids not in the dead set are left alone). An old cancel
-- request for the job is dropped: it was about the run that ended.
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local key = ARGV[1] .. id
    local f = redis.call('HMGET', key, 'attempts', 'score')
    if f[2] then
      redis.call('HSET', key, 'status', 'READY',
                 'max_attempts', tonumber(f[1] or '0') + tonumber(ARGV[i + 1]))
      redis.call('HDEL', key, 'finished_at')
      redis.call('ZADD', KEYS[2], f[2], id)
      redis.call('ZREM', KEYS[4], id)
      n = n + 1
    end
  end
end
if n > 0 then wake(KEYS[3]) end
return n
