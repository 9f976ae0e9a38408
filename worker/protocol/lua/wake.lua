-- wake(notify): one wake-up token for an idle worker (a burst of enqueues leaves one, not
-- one each).
local function wake(notify)
  if redis.call('LLEN', notify) == 0 then redis.call('RPUSH', notify, 1) end
end
