--! uses: store, clock
-- Enqueue the job of one periodic fire time, once however many schedulers ask: the
-- periodic hash remembers each schedule's latest fire time handled. mode 'fire' enqueues,
-- 'skip' only records a missed fire, 'catch_up' enqueues a missed fire unless the schedule
-- has never fired (a new schedule does not run for times before it existed).
-- A schedule an operator paused (its name in `periodic:paused`) records its fire times as
-- handled without running them: resumed, it does not catch up. The id of each job
-- enqueued is kept in the schedule's `runs` list (the latest `runs_kept`, newest first).
-- KEYS: as store, periodic, periodic:paused, runs;  ARGV: as store, name, fire_ms, mode,
--   runs_kept
-- Returns 0 (handled already), 1 (missed: recorded, not run), 2 (enqueued), 3 (a new
-- schedule's first, late, fire time: recorded, not run), 4 (a fire time still ahead on
-- Redis's clock: the asking worker's clock is fast; recording it would silence the
-- schedule for the others until then) or 5 (paused: recorded, not run).
if tonumber(ARGV[9]) > clock() + 1000 then return 4 end
local last = tonumber(redis.call('HGET', KEYS[7], ARGV[8]) or '-1')
if tonumber(ARGV[9]) <= last then return 0 end
redis.call('HSET', KEYS[7], ARGV[8], ARGV[9])
if redis.call('HEXISTS', KEYS[8], ARGV[8]) == 1 then return 5 end
if ARGV[10] ~= 'fire' and last < 0 then return 3 end
if ARGV[10] == 'skip' then return 1 end
store_argv()
redis.call('LPUSH', KEYS[9], ARGV[1])
redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[11]) - 1)
return 2
