--! uses: job
-- upgrade(jobp, id): moves a job the previous protocol (0.1) wrote, at P:{Q}:job:<id> with
-- long field names and the status spelled out, to this one's key and fields; false when
-- there is none. Run on the jobs 0.1 left queued, leased or dead-lettered as they are met.
-- 0.1 counted a running attempt in `attempts` already (this protocol, when it ends).
local LEGACY = {payload = 'm', max_attempts = 'n', priority = 'p', run_after = 'r',
                attempts = 'a', started_at = 't', last_attempted_at = 'l', worker_ids = 'w',
                finished_at = 'f', result = 'v'}
local STATUS = {READY = 'Q', RUNNING = 'R', SUCCESSFUL = 'S', FAILED = 'F'}
local function upgrade(jobp, id)
  local old = jobp .. 'job:' .. id
  local f = redis.call('HGETALL', old)
  if #f == 0 then return false end
  local new = {}
  for i = 1, #f, 2 do
    local name, value = f[i], f[i + 1]
    if name == 'started_at' or name == 'last_attempted_at' or name == 'finished_at' then
      new[#new + 1] = LEGACY[name]
      new[#new + 1] = since(id, value)
    elseif LEGACY[name] and not (name == 'attempts' and value == '0') then
      new[#new + 1] = LEGACY[name]
      new[#new + 1] = value
    elseif name == 'status' then
      new[#new + 1] = 's'
      new[#new + 1] = STATUS[value] or 'Q'
    elseif name ~= 'score' and name ~= 'enqueued_at' then  -- the id has the time
      new[#new + 1] = name  -- error:<n>, lost
      new[#new + 1] = value
    end
  end
  redis.call('DEL', old)  -- first: out of memory, a script's first write must not grow it
  redis.call('HSET', job(jobp, id), unpack(new))
  return true
end
