-- A run of a backfill is planned (worker/protocol/backfills.py): its hash now counts that
-- run. A later run starts the count afresh; an earlier one (a plan job of a run since
-- superseded) changes nothing. KEYS[1] the backfill's hash; ARGV: the run, the model's
-- label, the run's chunks, now (ms). Returns when the run was planned (ms), or -1 for an
-- earlier run.
local run = tonumber(ARGV[1])
local counted = tonumber(redis.call('HGET', KEYS[1], 'run') or '0')
if run < counted then
  return -1
end
if run > counted then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'run', ARGV[1], 'planned_ms', ARGV[4], 'done', 0, 'rows', 0)
end
redis.call('HSET', KEYS[1], 'model', ARGV[2], 'chunks', ARGV[3])
-- No chunk (an empty table), or every chunk counted before a plan run again: done.
if tonumber(redis.call('HGET', KEYS[1], 'done')) >= tonumber(ARGV[3]) then
  redis.call('HSETNX', KEYS[1], 'finished_ms', ARGV[4])
end
return tonumber(redis.call('HGET', KEYS[1], 'planned_ms'))
