--! uses: each
-- tell(jobp, kind, ids): let the processes waiting for some of these jobs know
-- (worker/protocol/listener.py): PUBLISH '<kind> <id> <id>...' on the queue's events
-- channel (jobp .. 'events') for those of the ids in its set of waited jobs
-- (jobp .. 'waited'); a job that ended (kind 'end') is waited for no more. One EXISTS when
-- nobody waits: the cost of a batch of outcomes in the common case.
local function tell(jobp, kind, ids)
  if #ids == 0 then return end
  local waited = jobp .. 'waited'
  if redis.call('EXISTS', waited) == 0 then return end
  local found = each('SMISMEMBER', waited, ids)
  local told = {}
  for i = 1, #ids do
    if found[i] == 1 then told[#told + 1] = ids[i] end
  end
  if #told == 0 then return end
  redis.call('PUBLISH', jobp .. 'events', kind .. ' ' .. table.concat(told, ' '))
  if kind == 'end' then each('SREM', waited, told) end
end
