--! uses: each
-- Read a workflow or a batch (lua/workflow.lua's hash) for its handle and for operators:
-- its status and counts, and per step (joins left out) its job id, how it ended, and
-- whether it is one of the last; not the values it keeps for the steps after them, nor
-- its lists of steps, which may be long.
-- KEYS: the workflow's hash
-- Returns false, or {s, k, m, d, x, n, z, e, {{id, end or false, 1 if last else 0}...}}
local w = redis.call('HMGET', KEYS[1], 's', 'k', 'm', 'd', 'x', 'n', 'z', 'e')
if not w[1] then return false end
local m, fields = tonumber(w[3]), {}
for i = 1, m do
  fields[#fields + 1] = 'j:' .. i
  fields[#fields + 1] = 'e:' .. i
  fields[#fields + 1] = 'o:' .. i
end
local got, steps = each('HMGET', KEYS[1], fields), {}
for i = 1, m do
  local id = got[3 * i - 2]
  if id then steps[#steps + 1] = {id, got[3 * i - 1] or false, got[3 * i] and 0 or 1} end
end
local reply = {}
for i = 1, 8 do reply[i] = w[i] or false end  -- a nil would end the reply there
reply[9] = steps
return reply
