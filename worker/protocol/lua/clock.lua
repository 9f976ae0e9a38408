-- clock(): Redis's own time in ms. What is due, and when a retry is, follow this one clock
-- rather than each worker's: a worker whose clock runs fast would otherwise start delayed
-- jobs early. (Redis 6.2 replicates a script that reads TIME by its effects only when told.)
redis.replicate_commands()
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
