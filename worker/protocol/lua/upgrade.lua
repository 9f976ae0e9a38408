-- upgrade(key): rewrites a job hash of the previous protocol (0.1: long field names, the
-- status spelled out) in this one's; false when the key holds no such hash. Run on the
-- jobs the previous version left queued, leased or dead-lettered as they are met.
local LEGACY = {payload = 'm', max_attempts = 'n', priority = 'p', run_after = 'r',
                attempts = 'a', started_at = 't', last_attempted_at = 'l', worker_ids = 'w',
                finished_at = 'f', result = 'v'}
local STATUS = {READY = 'Q', RUNNING = 'R', SUCCESSFUL = 'S', FAILED = 'F'}
local function upgrade(key)
  local f = redis.call('HGETALL', key)
  local new, old, legacy = {}, {}, false
  for i = 1, #f, 2 do
    local name, value = f[i], f[i + 1]
    if name == 'payload' then legacy = true end
    if LEGACY[name] then
      new[#new + 1] = LEGACY[name]
      new[#new + 1] = value
      old[#old + 1] = name
    elseif name == 'status' then
      new[#new + 1] = 's'
      new[#new + 1] = STATUS[value] or 'Q'
      old[#old + 1] = name
    elseif name == 'score' or name == 'enqueued_at' then  -- the id has the time
      old[#old + 1] = name
    end
  end
  if not legacy then return false end
  redis.call('HDEL', key, unpack(old))
  redis.call('HSET', key, unpack(new))
  return true
end
