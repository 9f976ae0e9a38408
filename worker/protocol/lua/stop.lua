--! uses: clock, workflow
-- Cancel a workflow or a batch (lua/workflow.lua's halt): its steps not started never run,
-- its running ones are asked to stop. A batch's jobs are its own: they run on.
-- KEYS: the workflow's hash
-- Returns 'cancelled', 'missing', or the status of a workflow that ended already.
local s = redis.call('HGET', KEYS[1], 's')
if not s then return 'missing' end
if s ~= 'R' then return s end
halt(KEYS[1], 'C', clock())
return 'cancelled'
