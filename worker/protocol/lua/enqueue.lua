--! uses: store, first
-- Enqueue. With a uniqueness key, if it names a job that still exists, return that job's
-- id instead of storing a new one.
-- KEYS: as store[, unique];  ARGV: as store[, unique_ms, job_key_prefix]
if KEYS[7] then
  local id = first(KEYS[7], ARGV[9])
  if id then return id end
  redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[8])
end
store_argv()
return false
