--! uses: clock, wake, flow
-- Count each limit group's slots again from the leases themselves (lua/flow.lua), and mend
-- the `running` hash where it says otherwise: its counts are kept exact by FETCH, ACK and
-- REQUEUE, but a worker of an earlier version that recovers a dead worker's leases does not
-- give their slots back, and slots must never be lost for good. A group that had more
-- counted than it runs may start its held jobs at once.
-- KEYS: running, workers, gates, notify
-- ARGV: leases_key_prefix (the key of a worker's leases without the worker id)
-- Returns how many groups were mended.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local real = {}
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  for _, lease in ipairs(redis.call('HVALS', ARGV[1] .. w)) do
    local g = lease_group(lease)
    if g then real[g] = (real[g] or 0) + 1 end
  end
end
local now, mended, counted = clock(), 0, redis.call('HGETALL', KEYS[1])
for i = 1, #counted, 2 do
  local g, n = counted[i], tonumber(counted[i + 1])
  local runs = real[g] or 0
  real[g] = nil
  if n ~= runs then
    mended = mended + 1
    if runs == 0 then
      redis.call('HDEL', KEYS[1], g)
    else
      redis.call('HSET', KEYS[1], g, runs)
    end
    if runs < n then redis.call('ZADD', KEYS[3], 'XX', 'LT', now, g) end
  end
end
for g, runs in pairs(real) do  -- running, yet not counted
  mended = mended + 1
  redis.call('HSET', KEYS[1], g, runs)
end
if mended > 0 then wake(KEYS[4]) end
return mended
