--! uses: job, tell
-- Store what running jobs reported (worker/runtime/reports.py): progress (field g, JSON
-- [done, total, note]) and metadata (field d, a JSON object), for the jobs whose hash still
-- stands (one that ended keeping no result has none: nothing to revive), and tell those
-- waiting for them ('progress <id>...', lua/tell.lua).
-- KEYS: the queue's waited set (for the slot)
-- ARGV: job_key_prefix, then three per job: id, progress JSON or '', metadata JSON or ''
-- Returns how many jobs' hashes were written.
local jobp, told = ARGV[1], {}
for i = 2, #ARGV, 3 do
  local key = job(jobp, ARGV[i])
  if redis.call('EXISTS', key) == 1 then
    local fields = {}
    if ARGV[i + 1] ~= '' then
      fields[#fields + 1] = 'g'
      fields[#fields + 1] = ARGV[i + 1]
    end
    if ARGV[i + 2] ~= '' then
      fields[#fields + 1] = 'd'
      fields[#fields + 1] = ARGV[i + 2]
    end
    redis.call('HSET', key, unpack(fields))
    told[#told + 1] = ARGV[i]
  end
end
tell(jobp, 'progress', told)
return #told
