-- How a kept success names the worker that ran it in its `w`: by a number, not by the
-- worker's id (`host:pid:random`: 15 bytes with a host name of 2 letters, about 40 on a
-- Kubernetes pod), the largest field of a kept result's hash after its message: the hash
-- of a job returning 42 took 90 bytes with the 15 (Redis allocates 96), 78 with the number
-- (80).
-- The number, 0 to 32767 (a 3-byte integer in the hash), is taken from the SHA1 of the id;
-- `P:{Q}:wid:<number>` holds the id for at least as long as any kept result naming it. A
-- number another worker's id holds is left to it: this worker's successes name it in full
-- then, as failures, retries and cancels always do (a dead letter is kept until purged).

-- named(jobp, wid, keep): how the successes this call stores, kept keep ms at most, name
-- worker `wid`; makes its number's key last at least as long (twice as long when it sets
-- it, so that a worker's acks renew it once per `keep`, not each time). A write that may
-- grow memory: out of memory, Redis lets it through only after the script's first write
-- (ACK's lease HDEL).
local function named(jobp, wid, keep)
  local number = tostring(tonumber(string.sub(redis.sha1hex(wid), 1, 4), 16) % 32768)
  local key = jobp .. 'wid:' .. number
  local holder = redis.call('GET', key)
  if holder and holder ~= wid then return wid end
  if not holder or redis.call('PTTL', key) < keep then
    redis.call('SET', key, wid, 'PX', 2 * keep)
  end
  return number
end

-- worker_ids(jobp, w, known): a job's `w` with each number in it replaced by the worker id
-- its key holds (`known` keeps those looked up, for the rest of the call); a number whose
-- key is gone (deleted by hand) stays as it is.
local function worker_ids(jobp, w, known)
  local out = {}
  for part in string.gmatch(w, '[^,]+') do
    if string.find(part, '^%d+$') then
      if known[part] == nil then known[part] = redis.call('GET', jobp .. 'wid:' .. part) or part end
      part = known[part]
    end
    out[#out + 1] = part
  end
  return table.concat(out, ',')
end
