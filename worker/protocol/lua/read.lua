--! uses: job, named
-- Read jobs as they stand, in one step: each one's hash (at the previous protocol's key if
-- there is none at this one's) and, for a job with neither a result nor an end, the lease a
-- worker holds on it (read in several steps, an ACK landing between them would show a job
-- that has just finished as ready, with no attempt). A success's worker ids come back in
-- full, whether its `w` holds them so (stored before successes named their worker by
-- number, or by a worker whose number another held) or by number (lua/named.lua).
-- KEYS: workers   ARGV: job_key_prefix, leases_key_prefix, id...
-- Returns per id {hash fields and values (none: no such job), worker or false, lease or
--   false}. Writes nothing.
local jobp, leasep = ARGV[1], ARGV[2]
local workers = false
local known = {}
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HGETALL', job(jobp, id))
  local open = #f > 0  -- a hash of this protocol: no result, status none, Q or R
  if not open then
    f = redis.call('HGETALL', jobp .. 'job:' .. id)
  else
    local w, success = false, false
    for k = 1, #f, 2 do
      if f[k] == 'v' or (f[k] == 's' and f[k + 1] == 'F') then open = false end
      if f[k] == 'v' then success = true elseif f[k] == 'w' then w = k + 1 end
    end
    if success and w then f[w] = worker_ids(jobp, f[w], known) end
  end
  local worker, lease = false, false
  if open then
    workers = workers or redis.call('SMEMBERS', KEYS[1])
    for _, w in ipairs(workers) do
      lease = redis.call('HGET', leasep .. w, id)
      if lease then
        worker = w
        break
      end
    end
  end
  out[#out + 1] = {f, worker, lease}
end
return out
