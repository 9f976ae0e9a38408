--! uses: wake, ready, job, upgrade
-- Send dead-lettered jobs back to the end of their ready list, each with a fresh set of
-- attempts (a dead letter of the previous protocol is upgraded first).
-- KEYS: dead, ready, priorities, notify, cancel
-- ARGV: job_key_prefix, then per job: id, attempts to allow on top of those used
-- Returns how many were requeued (ids not in the dead set are left alone). An old cancel
-- request for the job is dropped: it was about the run that ended.
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local key = job(ARGV[1], id)
    local f = redis.call('HMGET', key, 'm', 'a', 'p')
    if not f[1] and upgrade(ARGV[1], id) then f = redis.call('HMGET', key, 'm', 'a', 'p') end
    if f[1] then
      redis.call('HSET', key, 's', 'Q', 'n', tonumber(f[2] or '0') + tonumber(ARGV[i + 1]))
      redis.call('HDEL', key, 'f')
      push(KEYS[2], KEYS[3], tonumber(f[3] or '0'), {id}, false)
      redis.call('ZREM', KEYS[5], id)
      n = n + 1
    end
  end
end
if n > 0 then wake(KEYS[4]) end
return n
