-- A chunk of a backfill's run is done (worker/protocol/backfills.py): counted once however
-- many times its job runs, and only while the hash counts that run. KEYS[1] the
-- backfill's hash; ARGV: the run, the chunk's first pk, the rows it processed, now (ms).
-- Returns the chunks done, or -1 when the hash counts another run.
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then
  return -1
end
if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'rows', ARGV[3])
  local done = redis.call('HINCRBY', KEYS[1], 'done', 1)
  if done == tonumber(redis.call('HGET', KEYS[1], 'chunks')) then
    redis.call('HSET', KEYS[1], 'finished_ms', ARGV[4])
  end
  return done
end
return tonumber(redis.call('HGET', KEYS[1], 'done'))
