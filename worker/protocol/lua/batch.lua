--! uses: clock, workflow
-- Add jobs to an open batch, or close it (lua/workflow.lua). Jobs may be added after the
-- close, from its own jobs, until the batch ends (every job added ended after the close):
-- a job adding more does so before its own end.
-- KEYS: the batch's hash
-- ARGV: 'close'; or 'add', then 7 per job as ENQUEUE_MANY takes them (lua/store.lua)
-- Returns how many jobs it holds, or an error naming why it cannot.
local now, wkey = clock(), KEYS[1]
local w = redis.call('HMGET', wkey, 's', 'k', 'P', 'n', 'id')
if not w[1] or w[2] ~= 'b' then return redis.error_reply('no such batch') end
if w[1] ~= 'R' then return redis.error_reply('the batch has ended') end
if ARGV[1] == 'close' then
  redis.call('HSET', wkey, 'z', 1)
  fire(wkey, now)
  return tonumber(w[4])
end
local added, entries = 0, {}
for i = 2, #ARGV, 7 do
  local id = ARGV[i]
  local jobp = jobp_of(w[3], id)
  if store(job(jobp, id), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 6]) then
    redis.call('HSET', job(jobp, id), 'W', w[5])
    redis.call('HSET', jobp .. 'steps', id, wkey .. ' 0')
    added = added + 1
    local due = ARGV[i + 5] ~= '' and tonumber(ARGV[i + 5]) or nil
    entries[#entries + 1] = {jobp, id, tonumber(ARGV[i + 2]), due, ARGV[i + 6]}
  end
end
enter(entries, now)
return redis.call('HINCRBY', wkey, 'n', added)
