--! uses: each, store, job
-- Enqueue many jobs of one queue at once (the bulk API).
-- KEYS: ready, priorities, later, notify, gates
-- ARGV: job_key_prefix, then 7 per job: id, message, priority, max_attempts, run_after_ms
--   or '', due_ms or '', limit group or '' (as store). Flat: Redis hands a script its
--   arguments for less than decoding them from JSON would cost.
local ready, later, any = {}, {}, false  -- ready: priority -> ids in order
for i = 2, #ARGV, 7 do
  local id = ARGV[i]
  if store(job(ARGV[1], id), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
           ARGV[i + 6]) then
    any = true
    if ARGV[i + 5] ~= '' then
      later[#later + 1] = ARGV[i + 5]
      later[#later + 1] = id
    elseif not behind(ARGV[1], KEYS[5], id, ARGV[i + 6]) then
      local p = tonumber(ARGV[i + 2])
      local ids = ready[p] or {}
      ids[#ids + 1] = id
      ready[p] = ids
    end
  end
end
for p, ids in pairs(ready) do push(KEYS[1], KEYS[2], p, ids, false) end
each('ZADD', KEYS[3], later)
if any then wake(KEYS[4]) end
return (#ARGV - 1) / 7
