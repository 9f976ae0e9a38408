--! uses: each
-- Flow control (docs/protocol.md, "Flow control"): rate and concurrency limits per limit
-- group (a task's path, or path:<JSON key>: a job's field k), for every worker together.
-- A queue keeps, beside its jobs:
--   limits   hash: 'code:<path>' as the task declares it (written by each worker as it
--            starts), 'set:<path>' and 'set:<group>' as an operator set them; each
--            "count/window_ms/concurrency", a part empty for no limit
--   running  hash: group -> attempts leased now (a lease of such a job names its group)
--   gates    sorted set: group -> when its held jobs may start (ms; +inf: once a slot
--            frees or an operator changes its limits)
--   held:<group>    list: the group's jobs a limit holds, oldest first
--   starts:<group>  list: start times (ms) of the group's starts within the window, at
--            most `count`, newest first: a sliding log, so no window of window_ms holds
--            more than count starts
-- flow(jobp, limits, running, gates, now): the state one script call keeps of them.
local function flow(jobp, limits, running, gates, now)
  return {jobp = jobp, limits = limits, running = running, gates = gates, now = now,
          specs = {}, counts = {}, taken = {}, order = {}, gated = {}, logged = {},
          armed = false}
end
-- limits_of(F, g): {count or false, window_ms, concurrency or false} for group g, or false
-- when no limit applies. An operator's setting for the key wins, then theirs for the task,
-- then the task's own.
local function limits_of(F, g)
  local s = F.specs[g]
  if s == nil then
    local path = string.match(g, '^[^:]*')
    local f = redis.call('HMGET', F.limits, 'set:' .. g, 'set:' .. path, 'code:' .. path)
    local text = f[1] or f[2] or f[3]
    s = false
    if text then
      local n, w, c = string.match(text, '^(%d*)/(%d*)/(%d*)$')
      if n and (n ~= '' or c ~= '') then
        s = {tonumber(n) or false, tonumber(w) or 0, tonumber(c) or false}
      end
    end
    F.specs[g] = s
  end
  return s
end
-- once(memo, g, command, key, ...): what Redis answers, asked once a call per group
-- (what this call changes of it, it keeps in the memo itself).
local function once(memo, g, command, key, ...)
  local found = memo[g]
  if found == nil then
    found = redis.call(command, key, ...)
    memo[g] = found
  end
  return found
end
-- running_of(F, g): attempts of g running, those this call leased included.
local function running_of(F, g)
  if F.counts[g] == nil then F.counts[g] = tonumber(redis.call('HGET', F.running, g) or '0') end
  return F.counts[g]
end
-- blocked(F, g, s): false when a job of g may start now; else when it may (ms; math.huge:
-- when a slot frees, or never while a limit of 0 stands).
local function blocked(F, g, s)
  if s[3] and running_of(F, g) >= s[3] then return math.huge end
  if s[1] then
    if s[1] == 0 then return math.huge end
    local taken = F.taken[g] or 0  -- starts of this call, all at now: inside the window
    if taken >= s[1] then return F.now + s[2] end
    local log = F.jobp .. 'starts:' .. g
    -- its length before this call, which adds to it only at the end
    if once(F.logged, g, 'LLEN', log) > s[1] - 1 - taken then
      local nth = tonumber(redis.call('LINDEX', log, s[1] - 1 - taken))
      if nth > F.now - s[2] then return nth + s[2] end
    end
  end
  return false
end
-- gated(F, g): whether jobs of g are held already (a new one waits behind them).
local function gated(F, g)
  return once(F.gated, g, 'ZSCORE', F.gates, g) ~= false
end
-- hold(F, g, id, when): hold a job behind g's others; `when` (ms or math.huge) is when
-- the group may start again, for a group not held until now.
local function hold(F, g, id, when)
  redis.call('RPUSH', F.jobp .. 'held:' .. g, id)
  if not gated(F, g) then
    redis.call('ZADD', F.gates, when == math.huge and '+inf' or when, g)
    F.gated[g] = true
    if when ~= math.huge then F.armed = true end  -- a time some worker must wake for
  end
end
-- take(F, g): one start of g, counted; written by commit().
local function take(F, g)
  if F.counts[g] == nil then running_of(F, g) end
  if F.taken[g] == nil then
    F.taken[g] = 0
    F.order[#F.order + 1] = g
  end
  F.counts[g] = F.counts[g] + 1
  F.taken[g] = F.taken[g] + 1
end
-- commit(F): write the starts this call took: running counts, and the logs of rates
-- (the starts now gone out of the window leave the log's tail, a few a call: a log holds
-- what its window does, not `count` of a busy group's starts whatever their age).
local function commit(F)
  local now = string.format('%d', F.now)
  for _, g in ipairs(F.order) do
    local n = F.taken[g]
    redis.call('HINCRBY', F.running, g, n)
    local s = limits_of(F, g)
    if s and s[1] and s[1] > 0 then
      local log, times = F.jobp .. 'starts:' .. g, {}
      for i = 1, math.min(n, s[1]) do times[i] = now end
      each('LPUSH', log, times)
      redis.call('LTRIM', log, 0, s[1] - 1)
      for _ = 0, n do
        local oldest = redis.call('LINDEX', log, -1)
        if not oldest or tonumber(oldest) > F.now - s[2] then break end
        redis.call('RPOP', log)
      end
      redis.call('PEXPIRE', log, s[2])
    end
  end
end
-- give_back(F, counts): slots of ended leases ({group -> how many}) come back, and each
-- group's held jobs may start now (its gate moves to now, if later). True when a gate
-- moved: a worker should look.
local function give_back(F, counts)
  local moved = false
  for g, n in pairs(counts) do
    if redis.call('HINCRBY', F.running, g, -n) <= 0 then redis.call('HDEL', F.running, g) end
    if redis.call('ZADD', F.gates, 'XX', 'LT', 'CH', F.now, g) > 0 then moved = true end
  end
  return moved
end
-- lease_group(value): the group a lease ("attempt started_ms[ group]") counts in, or false.
local function lease_group(value)
  return string.match(value, '^%d+ %d+ (.+)$') or false
end
