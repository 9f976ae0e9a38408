--! uses: clock
-- A worker's heartbeat: its JSON for the length of its lease, and its id in the list of
-- workers that heartbeat (`P:heartbeats`, read where a SCAN's cost would grow with the
-- number of jobs), scored by Redis's clock: scored by each worker's own, a worker whose
-- clock ran an hour fast would drop every other from the list. A worker silent for
-- ARGV[4] ms leaves it.
-- Out of memory, Redis refuses the SET (a script's first write that may grow memory) and
-- nothing is written: the reply is its refusal as the SET's own would be ("OOM ...", not
-- wrapped as a script's error: "@user_script: 12: -OOM ..."), and the caller renews the
-- heartbeat's expiry instead.
-- KEYS: the worker's heartbeat, heartbeats
-- ARGV: worker_id, heartbeat JSON, ttl_ms, unlisted_after_ms
local now = clock()
local stored = redis.pcall('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if type(stored) == 'table' and stored.err then
  return redis.error_reply(string.match(stored.err, '^@user_script: %d+: %-(.*)$') or stored.err)
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
return 1
