"""The Lua scripts that move jobs between the queue's keys atomically (see docs/protocol.md).

Every script touches one queue's keys only, all under its {queue} hash tag. Job hashes are
reached from ids through the key prefix in ARGV, which stays inside the same hash slot.
"""

# Helpers, prepended to the scripts that use them. wake(): one wake-up token for an idle
# worker (a burst of enqueues leaves one, not one each).
_WAKE = """
local function wake(notify)
  if redis.call('LLEN', notify) == 0 then redis.call('RPUSH', notify, 1) end
end
"""

# each(): a command over a list of members, in slices (Lua's unpack has a limit of a few
# thousand values); one call for many members costs a script much less than a call per
# member. Returns the replies, concatenated.
_EACH = """
local function each(command, key, members)
  local replies = {}
  for i = 1, #members, 1000 do
    local reply = redis.call(command, key, unpack(members, i, math.min(i + 999, #members)))
    if type(reply) == 'table' then
      for _, r in ipairs(reply) do replies[#replies + 1] = r end
    end
  end
  return replies
end
"""

# store(): a new job's hash; true unless it exists already. The scripts that enqueue one
# job take it as KEYS[1..3] = job, ready or delayed, notify and ARGV[1..8] = id, payload,
# priority, score, max_attempts, enqueued_ms, run_after_ms or '', rank (its score in ready,
# or its due time in delayed); store_argv() stores that job, ranks it and wakes a worker.
_STORE = (
    _WAKE
    + """
local function store(key, _id, payload, priority, score, max_attempts, enqueued, run_after)
  -- A job is written once: a replayed call (its reply was lost) must not reset it.
  if redis.call('EXISTS', key) == 1 then return false end
  redis.call('HSET', key, 'payload', payload, 'priority', priority, 'score', score,
             'max_attempts', max_attempts, 'status', 'READY', 'attempts', 0,
             'enqueued_at', enqueued)
  if run_after ~= '' then redis.call('HSET', key, 'run_after', run_after) end
  return true
end
local function store_argv()
  if store(KEYS[1], unpack(ARGV, 1, 7)) then
    redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
    wake(KEYS[3])
  end
end
"""
)

# Enqueue. With a uniqueness key, if it names a job that still exists, return that job's
# id instead of storing a new one.
# KEYS: as _STORE[, unique];  ARGV: as _STORE[, unique_ms, job_key_prefix]
ENQUEUE = (
    _STORE
    + """
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first and redis.call('EXISTS', ARGV[10] .. first) == 1 then return first end
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[9])
end
store_argv()
return false
"""
)

# Enqueue many jobs of one queue at once (the bulk API).
# KEYS: ready, delayed, notify
# ARGV: job_key_prefix, then 9 per job: id, payload, priority, score, max_attempts,
#   enqueued_ms, run_after_ms or '', rank, deferred (0 or 1). Flat: Redis hands a script its
#   arguments for less than decoding them from JSON would cost.
ENQUEUE_MANY = (
    _EACH
    + _STORE
    + """
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
"""
)

# Enqueue the job of one periodic fire time, once however many schedulers ask: the
# periodic hash remembers each schedule's latest fire time handled. mode 'fire' enqueues,
# 'skip' only records a missed fire, 'catch_up' enqueues a missed fire unless the schedule
# has never fired (a new schedule does not run for times before it existed).
# KEYS: as _STORE, periodic;  ARGV: as _STORE, name, fire_ms, mode
# Returns 0 (handled already), 1 (missed: recorded, not run), 2 (enqueued) or 3 (a new
# schedule's first, late, fire time: recorded, not run).
FIRE = (
    _STORE
    + """
local last = tonumber(redis.call('HGET', KEYS[4], ARGV[9]) or '-1')
if tonumber(ARGV[10]) <= last then return 0 end
redis.call('HSET', KEYS[4], ARGV[9], ARGV[10])
if ARGV[11] ~= 'fire' and last < 0 then return 3 end
if ARGV[11] == 'skip' then return 1 end
store_argv()
return 2
"""
)

# Move due delayed jobs to ready, then lease up to `count` ready jobs to this worker.
# KEYS: ready, delayed, wip (this worker's), workers, notify
# ARGV: now_ms, count, worker_id, job_key_prefix
# Returns {{id, payload, attempts, worker_ids, enqueued_at, started_at, max_attempts}...,
#   next_delayed_due}
FETCH = (
    _WAKE
    + _EACH
    + """
local now, count, wid, jobp = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local score = redis.call('HGET', jobp .. id, 'score')
  if score then redis.call('ZADD', KEYS[1], score, id) end
  redis.call('ZREM', KEYS[2], id)
end
local out, leased = {}, {}
local popped = redis.call('ZPOPMIN', KEYS[1], count)
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = jobp .. id
  local f = redis.call('HMGET', key, 'payload', 'worker_ids', 'enqueued_at', 'started_at',
                       'max_attempts', 'attempts')
  if f[1] then
    local attempts = tonumber(f[6] or '0') + 1
    local wids = f[2] and (f[2] .. ',' .. wid) or wid
    local started = f[4] or ARGV[1]
    redis.call('HSET', key, 'status', 'RUNNING', 'attempts', attempts,
               'last_attempted_at', now, 'started_at', started, 'worker_ids', wids)
    leased[#leased + 1] = id
    out[#out + 1] = {id, f[1], attempts, wids, f[3], started, f[5]}
  else
    -- the id outlived its job (purged or expired): nothing to run
    out[#out + 1] = {id, false}
  end
end
if #leased > 0 then
  each('SADD', KEYS[3], leased)
  redis.call('SADD', KEYS[4], wid)
end
-- more is waiting than this worker took: wake another idle worker
if redis.call('ZCARD', KEYS[1]) > 0 then wake(KEYS[5]) end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {out, nxt[2] or false}
"""
)

# Store outcomes and release leases, in one call for a batch of jobs. Counts outcomes in
# `stats` and keeps the ids of the latest `history` successes in `done` (finished jobs
# are otherwise only reachable by id).
# KEYS: wip (this worker's), ready, delayed, dead, stats, done, cancel
# ARGV: now_ms, job_key_prefix, result_ttl_ms, history, outcomes: a JSON array of
#   [id, kind, value, retry_delay_ms, attempt] (one argument for the batch: cheaper to send
#   than five per job). kind 'ok': value is the JSON return value; 'err': value is the JSON
#   error, retried while attempts remain; 'fatal': the JSON error, never retried;
#   'cancel': stopped at an operator's request (FAILED, but not a dead letter).
ACK = (
    _EACH
    + """
local now, jobp, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local counts = {succeeded = 0, retried = 0, failed = 0, cancelled = 0}
local outcomes, ids, done, seen = cjson.decode(ARGV[5]), {}, {}, {}
for i, outcome in ipairs(outcomes) do ids[i] = outcome[1] end
local held = each('SMISMEMBER', KEYS[1], ids)
each('SREM', KEYS[1], ids)
if redis.call('EXISTS', KEYS[7]) == 1 then each('ZREM', KEYS[7], ids) end
for i, outcome in ipairs(outcomes) do
  local id, kind, value, delay, attempt = unpack(outcome)
  local key = jobp .. id
  local stale = false
  -- an id twice in one batch (two attempts' outcomes): the lease was the first one's
  if held[i] == 0 or seen[id] then
    -- Our lease was taken while we ran (we looked dead). If nobody has run the job since,
    -- the outcome stands and it must not run again; if another attempt has begun, that
    -- attempt owns the job: only this attempt's error is kept, for the record.
    if tonumber(redis.call('HGET', key, 'attempts') or '0') == attempt then
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
    else
      stale = true
    end
  end
  seen[id] = true
  if redis.call('EXISTS', key) == 1 then
    if stale then
      if kind ~= 'ok' then redis.call('HSET', key, 'error:' .. attempt, value) end
    elseif kind == 'ok' then
      redis.call('HSET', key, 'status', 'SUCCESSFUL', 'finished_at', now, 'result', value)
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
      done[#done + 1] = now
      done[#done + 1] = id
      counts.succeeded = counts.succeeded + 1
    else
      redis.call('HSET', key, 'error:' .. attempt, value)
      if kind == 'cancel' then
        redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
        if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
        counts.cancelled = counts.cancelled + 1
      elseif kind == 'err'
             and attempt < tonumber(redis.call('HGET', key, 'max_attempts') or '1') then
        redis.call('HSET', key, 'status', 'READY')
        redis.call('ZADD', KEYS[3], now + delay, id)
        counts.retried = counts.retried + 1
      else
        redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
        redis.call('ZADD', KEYS[4], now, id)
        counts.failed = counts.failed + 1
      end
    end
  end
end
for name, n in pairs(counts) do
  if n > 0 then redis.call('HINCRBY', KEYS[5], name, n) end
end
if #done > 0 then
  each('ZADD', KEYS[6], done)
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -tonumber(ARGV[4]) - 1)
end
return 1
"""
)

# Put every job leased to one worker back on the queue.
# mode 'lost': the worker died; the attempt counts and is recorded with ARGV[5] as its error,
#   and a job out of attempts goes to the dead letters (so a job that kills its worker
#   every time cannot loop forever).
# mode 'released': the worker is shutting down; the attempt does not count.
# With ids after ARGV[5], only those of the worker's leases (still leased) go back, as
# 'released': leases a live worker holds but never ran (the reply of their FETCH was lost).
# KEYS: wip (that worker's), ready, dead, workers, notify, stats
# ARGV: now_ms, job_key_prefix, worker_id, mode, error_json[, id...]
# Returns {requeued, dead}
REQUEUE = (
    _WAKE
    + """
local now, jobp, wid, mode = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local back, dead = 0, 0
local ids = {}
if #ARGV > 5 then
  for i = 6, #ARGV do
    if redis.call('SREM', KEYS[1], ARGV[i]) == 1 then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[4], wid)
end
for _, id in ipairs(ids) do
  local key = jobp .. id
  local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'score', 'worker_ids')
  if f[3] then
    local attempts = tonumber(f[1] or '1')
    if mode == 'released' then
      redis.call('HINCRBY', key, 'attempts', -1)
      local wids = f[4] or ''
      local cut = #wids - #wid
      if cut == 0 and wids == wid then
        redis.call('HDEL', key, 'worker_ids')
      elseif cut > 0 and string.sub(wids, cut) == ',' .. wid then
        redis.call('HSET', key, 'worker_ids', string.sub(wids, 1, cut - 1))
      end
    else
      redis.call('HSET', key, 'error:' .. attempts, ARGV[5])
    end
    if mode == 'lost' and attempts >= tonumber(f[2] or '1') then
      redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
      redis.call('ZADD', KEYS[3], now, id)
      dead = dead + 1
    else
      redis.call('HSET', key, 'status', 'READY')
      redis.call('ZADD', KEYS[2], f[3], id)
      back = back + 1
    end
  end
end
if mode == 'lost' then
  if back + dead > 0 then redis.call('HINCRBY', KEYS[6], 'lost', back + dead) end
  if dead > 0 then redis.call('HINCRBY', KEYS[6], 'failed', dead) end
end
if back > 0 then wake(KEYS[5]) end
return {back, dead}
"""
)

# Send dead-lettered jobs back to ready, each with a fresh set of attempts.
# KEYS: dead, ready, notify, cancel
# ARGV: job_key_prefix, then per job: id, attempts to allow on top of those used
# Returns how many were requeued (ids not in the dead set are left alone). An old cancel
# request for the job is dropped: it was about the run that ended.
RETRY = (
    _WAKE
    + """
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local key = ARGV[1] .. id
    local f = redis.call('HMGET', key, 'attempts', 'score')
    if f[2] then
      redis.call('HSET', key, 'status', 'READY',
                 'max_attempts', tonumber(f[1] or '0') + tonumber(ARGV[i + 1]))
      redis.call('HDEL', key, 'finished_at')
      redis.call('ZADD', KEYS[2], f[2], id)
      redis.call('ZREM', KEYS[4], id)
      n = n + 1
    end
  end
end
if n > 0 then wake(KEYS[3]) end
return n
"""
)
