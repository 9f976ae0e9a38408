--! uses: ready, job, upgrade, cancelled, workflow
-- Cancel a queued job: only the caller whose removal took it from its ready list, from
-- later or from its limit group's held jobs (or from the previous protocol's sets) marks
-- it, so a worker's fetch and a cancel never both win. A running job gets a cancel request
-- instead. Removing a ready or held job scans its list (an operator's action, not a hot
-- path).
-- KEYS: job, ready, priorities, later, cancel, stats, legacy ready, legacy delayed, gates
-- ARGV: id, now_ms, error_json, result_ttl_ms (0: the cancelled job's hash goes at once),
--   job_key_prefix, history (how many cancelled ids `cancelled` keeps, newest first)
-- Returns 'cancelled', 'requested', 'missing' or the status of a job that is neither.
local id = ARGV[1]
local function read() return redis.call('HMGET', KEYS[1], 'm', 's', 'p', 'a', 'v', 'k', 'b', 'x') end
local f = read()
if not f[1] and upgrade(ARGV[5], id) then f = read() end
if not f[1] then return 'missing' end
if f[8] then return 'FAILED' end  -- its workflow cancelled it (lua/workflow.lua)
local removed = redis.call('LREM', level(KEYS[2], tonumber(f[3] or '0')), 1, id)
  + redis.call('ZREM', KEYS[4], id) + redis.call('ZREM', KEYS[7], id)
  + redis.call('ZREM', KEYS[8], id)
if removed == 0 and f[6] then
  local held = ARGV[5] .. 'held:' .. f[6]
  removed = redis.call('LREM', held, 1, id)
  -- a gate with nothing held behind it goes (a due one would be dropped by FETCH anyway)
  if removed > 0 and redis.call('EXISTS', held) == 0 then redis.call('ZREM', KEYS[9], f[6]) end
end
if removed > 0 then
  cancelled(ARGV[5], id, tonumber(f[4] or '0'), ARGV[2], ARGV[3], ARGV[4], ARGV[6])
  settle(ARGV[5], {id}, {'C'}, {false}, tonumber(ARGV[2]))
  return 'cancelled'
end
if f[7] then  -- a step its workflow has not released yet (lua/workflow.lua)
  redis.call('HDEL', KEYS[1], 'b')
  cancelled(ARGV[5], id, 0, ARGV[2], ARGV[3], ARGV[4], ARGV[6])
  settle(ARGV[5], {id}, {'C'}, {false}, tonumber(ARGV[2]))
  return 'cancelled'
end
if f[5] then return 'SUCCESSFUL' end  -- a result means 'S'
if f[2] == 'F' then return 'FAILED' end
-- neither waiting nor finished: leased (a running job's status is in its lease)
redis.call('ZADD', KEYS[5], 'NX', ARGV[2], id)
return 'requested'
