--! uses: store
-- Enqueue. With a uniqueness key, if it names a job that still exists, return that job's
-- id instead of storing a new one.
-- KEYS: as store[, unique];  ARGV: as store[, unique_ms, job_key_prefix]
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first and redis.call('EXISTS', ARGV[10] .. first) == 1 then return first end
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[9])
end
store_argv()
return false
