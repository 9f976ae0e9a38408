-- clock(): Redis's own time in ms. What is due, and when a retry is, follow this one clock
-- rather than each worker's: a worker whose clock runs fast would otherwise start delayed
-- jobs early. (A script that reads TIME must be replicated by its effects: the default
-- since Redis 5; asked for explicitly for servers configured otherwise, a no-op on 7.)
redis.replicate_commands()
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
