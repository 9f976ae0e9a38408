--! uses: wake, ready
-- store(): a new job's hash; true unless it exists already. The scripts that enqueue one
-- job take it as KEYS[1..6] = job, ready, priorities, later, notify, gates and ARGV[1..7] = id,
-- message, priority, max_attempts, run_after_ms or '', due_ms or '' (deferred until then;
-- '': ready now), limit group or ''; store_argv() stores that job, queues it and wakes a
-- worker.
-- The hash holds what no other place does (docs/protocol.md): the message (m), the
-- deliveries allowed (n), the priority (p, unless 0), run_after (r, if given) and the limit
-- group (k, for a task with flow control); the enqueue time is in the id. A queued job's
-- hash is most of what it costs Redis.
local function store(key, message, priority, max_attempts, run_after, limit)
  -- A job is written once: a replayed call (its reply was lost) must not reset it.
  if redis.call('EXISTS', key) == 1 then return false end
  local f = {'m', message, 'n', max_attempts}
  if priority ~= '0' then
    f[#f + 1] = 'p'
    f[#f + 1] = priority
  end
  if run_after ~= '' then
    f[#f + 1] = 'r'
    f[#f + 1] = run_after
  end
  if limit ~= '' then
    f[#f + 1] = 'k'
    f[#f + 1] = limit
  end
  redis.call('HSET', key, unpack(f))
  return true
end
-- behind(jobp, gates, id, limit): a new ready job of a limit group that has jobs held
-- joins them at once (FETCH would only move it there: lua/flow.lua); true if it did.
local function behind(jobp, gates, id, limit)
  if limit == '' or not redis.call('ZSCORE', gates, limit) then return false end
  redis.call('RPUSH', jobp .. 'held:' .. limit, id)
  return true
end
local function store_argv()
  if store(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]) then
    if ARGV[6] ~= '' then
      redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
    elseif behind(string.sub(KEYS[1], 1, -28), KEYS[6], ARGV[1], ARGV[7]) then
      return  -- its gate wakes a worker when it may start
    else
      push(KEYS[2], KEYS[3], tonumber(ARGV[3]), {ARGV[1]}, false)
    end
    wake(KEYS[5])
  end
end
