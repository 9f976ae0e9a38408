--! uses: clock, ready, job, workflow
-- Remove up to ARGV[2] jobs of one of a queue's sets, their hashes with them.
-- KEYS: the set (the ready list of priority 0 for 'ready', gates for 'held'), priorities
-- ARGV: job_key_prefix, count, kind: 'ready' (every ready list), 'held' (every limit
--   group's held jobs), 'list' or 'zset'
-- A workflow's step removed ends as cancelled, for its workflow (lua/workflow.lua).
-- Returns how many were removed.
local count, ids = tonumber(ARGV[2]), {}
if ARGV[3] == 'ready' then
  ids = pop(KEYS[1], KEYS[2], count)
elseif ARGV[3] == 'held' then
  for _, g in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if #ids >= count then break end
    local held = ARGV[1] .. 'held:' .. g
    for _, id in ipairs(redis.call('LPOP', held, count - #ids) or {}) do ids[#ids + 1] = id end
    if redis.call('EXISTS', held) == 0 then redis.call('ZREM', KEYS[1], g) end
  end
elseif ARGV[3] == 'list' then
  ids = redis.call('RPOP', KEYS[1], count) or {}
else
  local popped = redis.call('ZPOPMIN', KEYS[1], count)
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
end
for _, id in ipairs(ids) do redis.call('DEL', job(ARGV[1], id)) end
local how = {}
for i = 1, #ids do how[i] = 'C' end
settle(ARGV[1], ids, how, {}, clock())  -- a workflow's step purged counts as cancelled
return #ids
