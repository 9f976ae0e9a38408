--! uses: each, store
-- Enqueue many jobs of one queue at once (the bulk API).
-- KEYS: ready, delayed, notify
-- ARGV: job_key_prefix, then 9 per job: id, payload, priority, score, max_attempts,
--   enqueued_ms, run_after_ms or '', rank, deferred (0 or 1). Flat: Redis hands a script its
--   arguments for less than decoding them from JSON would cost.
local ranked = {{}, {}}  -- ready, delayed: rank, id, rank, id...
for i = 2, #ARGV, 9 do
  if store(ARGV[1] .. ARGV[i], unpack(ARGV, i, i + 6)) then
    local into = ranked[tonumber(ARGV[i + 8]) + 1]
    into[#into + 1] = ARGV[i + 7]
    into[#into + 1] = ARGV[i]
  end
end
each('ZADD', KEYS[1], ranked[1])
each('ZADD', KEYS[2], ranked[2])
if #ranked[1] + #ranked[2] > 0 then wake(KEYS[3]) end
return (#ARGV - 1) / 9
