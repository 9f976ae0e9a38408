--! uses: clock, each, wake
-- Store outcomes and release leases, in one call for a batch of jobs. Counts outcomes in
-- `stats` and keeps the ids of the latest `history` successes in `done` (finished jobs
-- are otherwise only reachable by id).
-- KEYS: wip (this worker's), ready, delayed, dead, stats, done, cancel, notify
-- ARGV: job_key_prefix, history, outcomes: a JSON array of
--   [id, kind, value, retry_delay_ms, attempt, keep_ms] (one argument for the batch: cheaper
--   to send than six per job), cancelled_error_json. keep_ms: how long a success or a cancel
--   stays readable; 0: its hash goes at once (and a success is not listed in `done`).
--   kind 'ok': value is the JSON return value;
--   'err': value is the JSON error, retried while attempts remain; 'fatal': the JSON error,
--   never retried; 'cancel': stopped at an operator's request (FAILED, not a dead letter).
-- An operator's cancel request still pending when its attempt ends is answered here: a
-- retryable error then ends the job as cancelled, with cancelled_error_json recorded after
-- the attempt's own (as CANCEL records it for a queued job). A scheduled retry wakes an
-- idle worker, to learn when it is due.
-- Idempotent: an outcome sent again (its reply was lost) changes nothing. An outcome of a
-- worker taken for dead (REQUEUE marks the job 'lost' with the attempt) stands if no other
-- attempt has begun since; else it is only recorded as that attempt's error.
-- Returns the ids of the jobs cancelled instead of retried.
local now, jobp = clock(), ARGV[1]
local counts = {succeeded = 0, retried = 0, failed = 0, cancelled = 0}
local outcomes, ids, done, seen, stopped = cjson.decode(ARGV[3]), {}, {}, {}, {}
for i, outcome in ipairs(outcomes) do ids[i] = outcome[1] end
local held = each('SMISMEMBER', KEYS[1], ids)
-- Whose outcome is each? The job's attempts field says which attempt is the latest; a
-- lease (by id) is this attempt's only if no later attempt began (this worker may have
-- fetched the job again after it was taken for dead, or after a retry). Read first, then
-- written: out of memory, Redis refuses a script's first write that may grow memory but
-- none after it, and releasing the leases (SREM) cannot grow it.
local release, verdicts = {}, {}
for i, outcome in ipairs(outcomes) do
  local id, attempt = outcome[1], outcome[5]
  local f = redis.call('HMGET', jobp .. id, 'attempts', 'lost')
  local verdict = 'replay'
  if not f[1] then
    verdict = 'gone'
    if held[i] == 1 then release[#release + 1] = id end
  elseif tonumber(f[1]) ~= attempt then
    verdict = 'stale'
  elseif held[i] == 1 and not seen[id] then
    verdict = 'own'
    release[#release + 1] = id
    seen[id] = true  -- the lease is this outcome's; a second outcome of it is a replay
  elseif tonumber(f[2] or '0') == attempt then
    verdict = 'late'
  end
  verdicts[i] = verdict
end
each('SREM', KEYS[1], release)
local requests = redis.call('EXISTS', KEYS[7]) == 1
for i, outcome in ipairs(outcomes) do
  local id, kind, value, delay, attempt, keep = unpack(outcome)
  local key = jobp .. id
  local verdict = verdicts[i]
  local stale, replay = verdict == 'stale', verdict == 'replay'
  if verdict == 'late' then
    redis.call('HDEL', key, 'lost')
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    if redis.call('ZREM', KEYS[4], id) == 1 then counts.failed = counts.failed - 1 end
  end
  local cancel = false
  if requests and not (stale or replay) then cancel = redis.call('ZREM', KEYS[7], id) == 1 end
  if not replay and verdict ~= 'gone' then
    if stale then
      if kind ~= 'ok' then redis.call('HSET', key, 'error:' .. attempt, value) end
    elseif kind == 'ok' then
      if keep > 0 then
        redis.call('HSET', key, 'status', 'SUCCESSFUL', 'finished_at', now, 'result', value)
        redis.call('PEXPIRE', key, keep)
        done[#done + 1] = now
        done[#done + 1] = id
      else
        redis.call('DEL', key)
      end
      counts.succeeded = counts.succeeded + 1
    else
      redis.call('HSET', key, 'error:' .. attempt, value)
      if cancel and kind == 'err' then
        kind = 'cancel'
        stopped[#stopped + 1] = id
        if ARGV[4] ~= '' then redis.call('HSET', key, 'error:' .. (attempt + 1), ARGV[4]) end
      end
      if kind == 'cancel' then
        if keep > 0 then
          redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
          redis.call('PEXPIRE', key, keep)
        else
          redis.call('DEL', key)
        end
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
  if n ~= 0 then redis.call('HINCRBY', KEYS[5], name, n) end
end
if #done > 0 then
  each('ZADD', KEYS[6], done)
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -tonumber(ARGV[2]) - 1)
end
if counts.retried > 0 then wake(KEYS[8]) end
return stopped
