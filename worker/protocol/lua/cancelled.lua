--! uses: job, tell
-- cancelled(jobp, id, attempts, now, error_json, keep_ms, history): end a job that is not
-- running as cancelled: counted in its queue's stats, recorded FAILED with error_json after
-- its `attempts` (as an attempt's error), kept keep_ms (0: its hash goes at once) and listed
-- among the latest `history` cancellations; the processes waiting for it are told. Where it
-- waited (a ready list, later, held) is the caller's business: CANCEL takes it from there,
-- a stopping workflow leaves it for FETCH to skip (lua/workflow.lua).
local function cancelled(jobp, id, attempts, now, error_json, keep_ms, history)
  local key = job(jobp, id)
  redis.call('HINCRBY', jobp .. 'stats', 'cancelled', 1)
  tell(jobp, 'end', {id})
  if tonumber(keep_ms) == 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 's', 'F', 'f', since(id, now), 'error:' .. (attempts + 1), error_json)
  redis.call('PEXPIRE', key, keep_ms)
  redis.call('HDEL', key, 'lost')  -- a late outcome of the lost attempt must not revive it
  redis.call('LPUSH', jobp .. 'cancelled', id)
  redis.call('LTRIM', jobp .. 'cancelled', 0, tonumber(history) - 1)
end
