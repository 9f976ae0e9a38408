--! uses: clock, each, wake, ready, job, flow, tell, workflow, named
-- Store outcomes and release leases, in one call for a batch of jobs. Counts outcomes in
-- `stats` and keeps the ids of the latest `history` successes in `finished` and of the
-- latest kept cancellations in `cancelled` (newest first; finished jobs are otherwise only
-- reachable by id).
-- KEYS: leases (this worker's), ready, priorities, later, dead, stats, finished, cancel,
--   notify, running, gates
-- ARGV: job_key_prefix, history, cancelled_error_json, worker_id, then six per outcome: id, kind,
--   value, retry_delay_ms, attempt, keep_ms (flat: cheaper for Redis to hand over than a
--   JSON batch to decode). keep_ms: how long a success or a cancel stays readable; 0: its
--   hash goes at once (and a success is not listed in `finished`). kind 'ok': value is the
--   JSON return value; 'err': the JSON error, retried while attempts remain; 'fatal': the
--   JSON error, never retried; 'cancel': stopped at an operator's request (FAILED, not a
--   dead letter); 'later': the task asked to run again after retry_delay_ms (RateLimited),
--   the attempt not counted.
-- A lease of a job with flow control names its group: its slot comes back here, and the
-- group's held jobs may start (docs/protocol.md, "Flow control").
-- An operator's cancel request still pending when its attempt ends is answered here: a
-- retryable error then ends the job as cancelled, with cancelled_error_json recorded after
-- the attempt's own (as CANCEL records it for a queued job). A scheduled retry wakes an
-- idle worker, to learn when it is due.
-- Idempotent: an outcome sent again (its reply was lost) changes nothing. An outcome of a
-- worker taken for dead (REQUEUE marks the job 'lost' with the attempt) stands if no other
-- attempt has begun since; else it is only recorded as that attempt's error.
-- The processes waiting for a job that ends here are told (lua/tell.lua), and its workflow
-- moves on (lua/workflow.lua). A kept success names this worker by a number whose key
-- holds its id (lua/named.lua): a few bytes where the id took 15 to 40 and more.
-- Returns the ids of the jobs cancelled instead of retried.
local now, jobp, wid = clock(), ARGV[1], ARGV[4]
local first, n = 5, (#ARGV - 4) / 6
local counts = {succeeded = 0, retried = 0, failed = 0, cancelled = 0, deferred = 0}
local ids, done, seen, stopped, ended = {}, {}, {}, {}, {}
for i = 1, n do ids[i] = ARGV[first + (i - 1) * 6] end
-- The jobs whose outcome here ends them, for those waiting (lua/tell.lua) and for their
-- workflows (lua/workflow.lua): how each ended, and a success's value.
local over, hows, values = {}, {}, {}
local function ends(id, how, value)
  over[#over + 1] = id
  hows[#hows + 1] = how
  values[#values + 1] = value
end
-- Whose outcome is each? This worker's lease of the job names the attempt it holds and
-- when it began: an outcome of that attempt owns the job (no other attempt begins while a
-- lease stands, and no command deletes or expires a leased job's hash), and writes that
-- attempt's record (attempts, starts, worker ids) with the outcome, in one HSET. Any other
-- outcome reads the job's latest attempt from its hash. Read first, then written: out of
-- memory, Redis refuses a script's first write that may grow memory but none after it,
-- and releasing the leases (HDEL) cannot grow it.
local held = each('HMGET', KEYS[1], ids)
local release, verdicts, slots, starts, before = {}, {}, {}, {}, {}
local function free(lease)  -- the slot a released lease held, if it counted in a group
  local g = lease_group(lease)
  if g then slots[g] = (slots[g] or 0) + 1 end
end
for i = 1, n do
  local id, attempt = ids[i], tonumber(ARGV[first + (i - 1) * 6 + 4])
  local lease_attempt, started = false, false
  if held[i] then lease_attempt, started = string.match(held[i], '^(%d+) (%d+)') end
  local verdict
  if lease_attempt and tonumber(lease_attempt) == attempt and not seen[id] then
    verdict = 'own'
    starts[i] = started
    release[#release + 1] = id
    free(held[i])
    seen[id] = true  -- a second outcome of the same lease is a replay
    if attempt > 1 then before[i] = redis.call('HGET', job(jobp, id), 'w') end
  else
    local f = redis.call('HMGET', job(jobp, id), 'm', 'a', 'lost')
    if not f[1] then
      verdict = 'gone'
      if held[i] and not seen[id] then  -- an id twice in one batch frees its slot once
        release[#release + 1] = id
        free(held[i])
        seen[id] = true
      end
    elseif tonumber(f[2] or '0') ~= attempt then
      verdict = 'stale'
    elseif tonumber(f[3] or '0') == attempt then
      verdict = 'late'  -- REQUEUE recorded the attempt's starts and worker
    else
      verdict = 'replay'
    end
  end
  verdicts[i] = verdict
end
each('HDEL', KEYS[1], release)
-- The kept successes of this worker's leases name it by a number (lua/named.lua).
local keep_named = 0
for i = 1, n do
  local at = first + (i - 1) * 6
  if verdicts[i] == 'own' and ARGV[at + 1] == 'ok' then
    keep_named = math.max(keep_named, tonumber(ARGV[at + 5]))
  end
end
local me = keep_named > 0 and named(jobp, wid, keep_named) or wid
-- record(i, attempt, name): the record of the attempt outcome i ended, for a job its lease
-- owned ({} for the others), naming this worker `name`. A success keeps no 'a': a result
-- without one took one attempt.
local function record(i, attempt, name)
  local id, started = ids[i], starts[i]
  if not started then return {} end
  if attempt == 1 then return {'t', since(id, started), 'w', name} end
  local wids = before[i]
  return {'a', attempt, 'l', since(id, started), 'w', wids and (wids .. ',' .. name) or name}
end
local requests = redis.call('EXISTS', KEYS[8]) == 1
local gone = {}  -- hashes of jobs that end with nothing to keep
local function put(key, fields, more)
  for _, v in ipairs(more) do fields[#fields + 1] = v end
  redis.call('HSET', key, unpack(fields))
end
for i = 1, n do
  local at = first + (i - 1) * 6
  local id, kind, value = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local delay, attempt, keep = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
  local key = job(jobp, id)
  local verdict = verdicts[i]
  local stale, replay = verdict == 'stale', verdict == 'replay'
  if verdict == 'late' then
    local f = redis.call('HMGET', key, 'p', 'k')
    redis.call('HDEL', key, 'lost')
    redis.call('LREM', level(KEYS[2], tonumber(f[1] or '0')), 1, id)
    if f[2] then  -- requeued, a limit may hold it since
      local held_list = jobp .. 'held:' .. f[2]
      if redis.call('LREM', held_list, 1, id) > 0 and redis.call('EXISTS', held_list) == 0 then
        redis.call('ZREM', KEYS[11], f[2])
      end
    end
    redis.call('ZREM', KEYS[4], id)
    if redis.call('ZREM', KEYS[5], id) == 1 then counts.failed = counts.failed - 1 end
  end
  local cancel = false
  if requests and not (stale or replay) then cancel = redis.call('ZREM', KEYS[8], id) == 1 end
  if not replay and verdict ~= 'gone' then
    local run = record(i, attempt, kind == 'ok' and keep > 0 and me or wid)
    if stale then
      if kind == 'err' or kind == 'fatal' or kind == 'cancel' then
        redis.call('HSET', key, 'error:' .. attempt, value)
      end
    elseif kind == 'ok' then
      if keep > 0 then
        put(key, run, {'f', since(id, now), 'v', value})  -- a result means 'S'
        redis.call('PEXPIRE', key, keep)
        done[#done + 1] = id
      else
        gone[#gone + 1] = key
      end
      counts.succeeded = counts.succeeded + 1
      ends(id, 'S', value)
    elseif kind == 'later' and not cancel then
      -- not an attempt: the hash keeps the count of those before it (FETCH wrote a later
      -- attempt's number, REQUEUE a lost one's)
      if verdict == 'late' then  -- REQUEUE counted and recorded it (dead-lettered, maybe)
        redis.call('HDEL', key, 'f', 'error:' .. attempt)
        redis.call('HSET', key, 's', 'Q')
        if attempt == 1 then redis.call('HDEL', key, 'a') end
      end
      if attempt > 1 then redis.call('HSET', key, 'a', attempt - 1) end
      redis.call('ZADD', KEYS[4], now + delay, id)
      counts.deferred = counts.deferred + 1
    else
      for _, v in ipairs({'a', attempt, 'error:' .. attempt, value}) do run[#run + 1] = v end
      if starts[i] then  -- an attempt that failed: when it ran, for its job's timeline
        run[#run + 1] = 'at:' .. attempt
        run[#run + 1] = since(id, starts[i]) .. ' ' .. since(id, now)
      end
      if cancel and (kind == 'err' or kind == 'later') then
        kind = 'cancel'
        stopped[#stopped + 1] = id
        if ARGV[3] ~= '' then
          run[#run + 1] = 'error:' .. (attempt + 1)
          run[#run + 1] = ARGV[3]
        end
      end
      if kind == 'cancel' then
        if keep > 0 then
          put(key, run, {'s', 'F', 'f', since(id, now)})
          redis.call('PEXPIRE', key, keep)
          ended[#ended + 1] = id
        else
          gone[#gone + 1] = key
        end
        counts.cancelled = counts.cancelled + 1
        ends(id, 'C', false)
      elseif kind == 'err' and attempt < tonumber(redis.call('HGET', key, 'n') or '1') then
        put(key, run, {'s', 'Q'})
        redis.call('ZADD', KEYS[4], now + delay, id)
        counts.retried = counts.retried + 1
      else
        put(key, run, {'s', 'F', 'f', since(id, now)})
        redis.call('ZADD', KEYS[5], now, id)
        counts.failed = counts.failed + 1
        ends(id, 'F', false)
      end
    end
  end
end
for i = 1, #gone, 1000 do redis.call('DEL', unpack(gone, i, math.min(i + 999, #gone))) end
for name, count in pairs(counts) do
  if count ~= 0 then redis.call('HINCRBY', KEYS[6], name, count) end
end
if #done > 0 then
  each('LPUSH', KEYS[7], done)
  redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[2]) - 1)
end
if #ended > 0 then
  each('LPUSH', jobp .. 'cancelled', ended)
  redis.call('LTRIM', jobp .. 'cancelled', 0, tonumber(ARGV[2]) - 1)
end
tell(jobp, 'end', over)
settle(jobp, over, hows, values, now)
local F = flow(jobp, '', KEYS[10], KEYS[11], now)
if give_back(F, slots) or counts.retried + counts.deferred > 0 then wake(KEYS[9]) end
return stopped
