--! uses: clock, wake
-- Write limits (lua/flow.lua): fields of the limits hash and their values, '' to remove
-- one. The held jobs of every group a changed field governs may start at once if they can:
-- their gates move to now (FETCH asks the limits again; a higher limit takes effect now).
-- KEYS: limits, gates, notify
-- ARGV: field, value, field, value...
-- Returns how many fields changed.
local now, changed, paths, groups = clock(), 0, {}, {}
for i = 1, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if (redis.call('HGET', KEYS[1], field) or '') ~= value then
    changed = changed + 1
    if value == '' then
      redis.call('HDEL', KEYS[1], field)
    else
      redis.call('HSET', KEYS[1], field, value)
    end
    local scope = string.match(field, '^[^:]*:(.*)$')
    if string.find(scope, ':', 1, true) then groups[scope] = true else paths[scope] = true end
  end
end
if changed > 0 then
  local opened = {}
  for _, g in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if groups[g] or paths[string.match(g, '^[^:]*')] then opened[#opened + 1] = g end
  end
  for i = 1, #opened, 1000 do
    local args = {}
    for j = i, math.min(i + 999, #opened) do
      args[#args + 1] = now
      args[#args + 1] = opened[j]
    end
    redis.call('ZADD', KEYS[2], 'XX', 'LT', unpack(args))
  end
  if #opened > 0 then wake(KEYS[3]) end
end
return changed
