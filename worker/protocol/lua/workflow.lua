--! uses: each, wake, ready, job, store, tell, cancelled
-- Workflows and batches (worker/workflows, docs/workflows.md). Their bookkeeping runs in
-- the script that ends a step (ACK, REQUEUE, CANCEL, DELETE, PURGE: settle()), so a step's
-- end and what follows from it (the steps it releases, a stop) are one atomic change, and
-- a replayed outcome (which those scripts tell from a first one) changes nothing more.
-- A workflow's hash W (P:{Q}:wf:<token>, Q the queue of its first step) holds:
--   id; k: 'w' (steps of a graph) or 'b' (a batch); s: R (running), S, F or C; P: the key
--   prefix; t: how long it, and its steps' records, are kept once ended (ms); h: how many
--   cancellations a queue lists; ce: the error of a step its workflow cancelled; m: its
--   steps; d, x: steps (a batch: jobs) ended, and of those, not succeeded; e: when it
--   ended (ms). Per step i: j:i its job id; o:i the steps after it ("2 3"); w:i how many
--   it still waits for (a step waiting holds 'b' in its job hash, and is on no list);
--   i:i what it takes of the steps before it (input()); c:i '1': its failure does not stop
--   the workflow; r:i '1': a step takes its value, v:i (once it succeeded); e:i how it
--   ended (S, F or C; the first end stands). A step without j:i is a join: J of them, no
--   job, ended as soon as the steps it waits for have (a group after a group waits for one
--   join, not each for every step: edges grow as the steps, not as their product); joins
--   count in neither d nor the steps shown. A batch: n jobs added; z '1' once closed; os,
--   oc: the steps on_success and on_complete; the list W:f, the ids of its jobs that did
--   not succeed.
-- When its status leaves R, the processes waiting for the workflow's id are told its end,
-- as for a job's (lua/tell.lua, on its first step's queue).
-- A step's job hash names its workflow in 'W'. Each queue's `steps` hash maps the id of a
-- job of a workflow or batch to "<W> <i>" (i 0: a batch's job) until it ends: one EXISTS
-- tells a script that a queue has none.
-- Keys of other queues are named from P: a workflow spans queues, so these scripts need a
-- single Redis (docs/workflows.md).

-- jobp_of(prefix, id): the key prefix of a job's queue (P:{Q}:).
local function jobp_of(prefix, id)
  return prefix .. ':{' .. string.match(id, '^([^:]*):') .. '}:'
end

-- enter(entries, now): stored jobs join their queues, as new ones do (lua/store.lua), a
-- call per queue and priority: entries {jobp, id, priority, due_ms or nil, limit}, in the
-- order they run in.
local function enter(entries, now)
  local ready, later, woken = {}, {}, {}
  for _, e in ipairs(entries) do
    local jobp, id, p, due = e[1], e[2], e[3], e[4]
    if due and due > now then
      local ids = later[jobp] or {}
      ids[#ids + 1] = due
      ids[#ids + 1] = id
      later[jobp] = ids
      woken[jobp] = true
    elseif not behind(jobp, jobp .. 'gates', id, e[5] or '') then
      local levels = ready[jobp] or {}
      local ids = levels[p] or {}
      ids[#ids + 1] = id
      levels[p] = ids
      ready[jobp] = levels
      woken[jobp] = true
    end
  end
  for jobp, levels in pairs(ready) do
    for p, ids in pairs(levels) do push(jobp .. 'queued', jobp .. 'priorities', p, ids, false) end
  end
  for jobp, ids in pairs(later) do each('ZADD', jobp .. 'later', ids) end
  for jobp in pairs(woken) do wake(jobp .. 'notify') end
end

-- write_steps(prefix, wid, first, at, count, fields, staging_ms): the steps numbered from
-- `first`, 11 ARGV each from ARGV[at] (lua/start.lua lists them): each job's hash, naming
-- its workflow (with 'b' if it waits), and the workflow's fields of each step added to
-- `fields`. Returns the steps that wait for none: {jobp, id, priority, due, limit} each.
-- With staging_ms (a large workflow's first steps, lua/stage.lua), the hashes expire then
-- unless START takes them, and those steps are returned to START in fields q:<i> instead.
local function write_steps(prefix, wid, first, at, count, fields, staging_ms)
  local entries = {}
  local function field(name, value)
    if value ~= '' then
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
  end
  for n = 0, count - 1 do
    local i, a = first + n, at + n * 11
    local id = ARGV[a]
    if id ~= '' then  -- else a join: no job
      local jobp = jobp_of(prefix, id)
      local key = job(jobp, id)
      local f = {'m', ARGV[a + 1], 'n', ARGV[a + 3], 'W', wid}
      if ARGV[a + 2] ~= '0' then
        f[#f + 1] = 'p'
        f[#f + 1] = ARGV[a + 2]
      end
      for k, name in ipairs({'r', 'k'}) do
        if ARGV[a + 3 + k] ~= '' then
          f[#f + 1] = name
          f[#f + 1] = ARGV[a + 3 + k]
        end
      end
      if ARGV[a + 6] ~= '0' then
        f[#f + 1] = 'b'
        f[#f + 1] = 1
      elseif staging_ms then  -- for START, which queues it: "priority|due|limit"
        field('q:' .. i, ARGV[a + 2] .. '|' .. ARGV[a + 4] .. '|' .. ARGV[a + 5])
      else
        entries[#entries + 1] = {jobp, id, tonumber(ARGV[a + 2]), tonumber(ARGV[a + 4]),
                                 ARGV[a + 5]}
      end
      redis.call('HSET', key, unpack(f))
      if staging_ms then redis.call('PEXPIRE', key, staging_ms) end
      field('j:' .. i, id)
    end
    field('w:' .. i, ARGV[a + 6] ~= '0' and ARGV[a + 6] or '')
    field('o:' .. i, ARGV[a + 7])
    field('i:' .. i, ARGV[a + 8])
    field('c:' .. i, ARGV[a + 9])
    field('r:' .. i, ARGV[a + 10])
  end
  return entries
end

-- input(W, spec): the JSON a released step takes, and the JSON list of the ids of those
-- before it that did not succeed (or nil). spec: 'v k' the value of step k; 'l k1 k2...'
-- their values in a list (null for one that did not succeed); a trailing 'f' on v or l:
-- the failures are named too; 'b': a batch's summary.
local function input(wkey, spec)
  local kind, rest = string.match(spec, '^(%a+) ?(.*)$')
  local failed = {}
  if kind == 'b' then
    local f = redis.call('HMGET', wkey, 'id', 'n')
    for _, id in ipairs(redis.call('LRANGE', wkey .. ':f', 0, -1)) do
      failed[#failed + 1] = cjson.encode(id)
    end
    return '{"batch":' .. cjson.encode(f[1]) .. ',"jobs":' .. f[2] .. ',"failed":['
      .. table.concat(failed, ',') .. ']}', nil
  end
  local values = {}
  for k in string.gmatch(rest, '%d+') do
    local f = redis.call('HMGET', wkey, 'e:' .. k, 'v:' .. k, 'j:' .. k)
    if f[1] == 'S' then
      values[#values + 1] = f[2] or 'null'
    else
      values[#values + 1] = 'null'
      failed[#failed + 1] = cjson.encode(f[3])
    end
  end
  local value = string.sub(kind, 1, 1) == 'v' and values[1] or '[' .. table.concat(values, ',') .. ']'
  if string.sub(kind, -1) == 'f' then return value, '[' .. table.concat(failed, ',') .. ']' end
  return value, nil
end

-- finish(W): the workflow's status has left R: those waiting for it are told, and it is
-- kept for its TTL.
local function finish(wkey)
  local w = redis.call('HMGET', wkey, 'id', 'P', 't')
  tell(jobp_of(w[2], w[1]), 'end', {w[1]})
  for _, key in ipairs({wkey, wkey .. ':f'}) do
    if tonumber(w[3]) > 0 then
      redis.call('PEXPIRE', key, w[3])
    else
      redis.call('DEL', key)
    end
  end
end

-- The ids of the jobs the running script is ending (settle()): a stop they cause leaves
-- them to their own end, which follows.
local ending = {}

local step_ended, release  -- (defined below: each may lead to the other)

-- advance(W, prefix, after, now): a step ended (and had been released): each step of
-- `after` ("2 3") waits for one fewer; those that wait for none are released.
local function advance(wkey, prefix, after, now)
  for j in string.gmatch(after or '', '%d+') do
    if redis.call('HINCRBY', wkey, 'w:' .. j, -1) <= 0 then
      redis.call('HDEL', wkey, 'w:' .. j)
      release(wkey, prefix, j, now)
    end
  end
end

-- release(W, prefix, i, now): step i waits no more: what it takes goes into its message
-- (fields "input" and "failed", which the worker passes as its first argument and as
-- `failed`), and it joins its queue. A join ends there and then.
release = function(wkey, prefix, i, now)
  local f = redis.call('HMGET', wkey, 'j:' .. i, 'i:' .. i, 'e:' .. i, 'o:' .. i)
  if f[3] then  -- it ended while it waited (cancelled by hand): those after it go on now
    advance(wkey, prefix, f[4], now)
    return
  end
  local id = f[1]
  if not id then
    step_ended(wkey, i, false, 'S', false, now)
    return
  end
  local jobp = jobp_of(prefix, id)
  local key = job(jobp, id)
  local g = redis.call('HMGET', key, 'm', 'p', 'r', 'k')
  if not g[1] then  -- its record is gone: it cannot run, and must not hold up the rest
    step_ended(wkey, i, id, 'C', false, now)
    redis.call('HDEL', jobp .. 'steps', id)
    return
  end
  redis.call('HDEL', key, 'b')
  if f[2] then
    local value, failed = input(wkey, f[2])
    local m = string.sub(g[1], 1, -2) .. ',"input":' .. value
    if failed then m = m .. ',"failed":' .. failed end
    redis.call('HSET', key, 'm', m .. '}')
  end
  enter({{jobp, id, tonumber(g[2] or '0'), tonumber(g[3]), g[4]}}, now)
end

-- halt(W, status, now): the workflow ends as F or C with steps not ended: a waiting or
-- queued one is cancelled now (a queued one marked 'x', which FETCH skips where it lies,
-- rather than searched for in its list), a running one is asked to stop (a cancel
-- request, as for any running job: its ACK ends it), a join just ends. A batch's are its
-- callbacks.
local function halt(wkey, status, now)
  local w = redis.call('HMGET', wkey, 'P', 'm', 't', 'h', 'ce', 'k')
  local prefix, m, ttl, history, ce = w[1], tonumber(w[2]), w[3], w[4], w[5]
  redis.call('HSET', wkey, 's', status, 'e', now)
  local fields = {}
  for i = 1, m do
    fields[#fields + 1] = 'e:' .. i
    fields[#fields + 1] = 'j:' .. i
    fields[#fields + 1] = 'w:' .. i
  end
  local got, ended, marks, queued = each('HMGET', wkey, fields), 0, {}, {}
  local function mark(i)
    marks[#marks + 1] = 'e:' .. i
    marks[#marks + 1] = 'C'
  end
  for i = 1, m do
    local e, id, waits = got[3 * i - 2], got[3 * i - 1], got[3 * i]
    if not e and not id then
      mark(i)  -- a join
    elseif not e and not ending[id] then
      local jobp = jobp_of(prefix, id)
      if waits then
        redis.call('HDEL', job(jobp, id), 'b')
        cancelled(jobp, id, 0, now, ce, ttl, history)
        redis.call('HDEL', jobp .. 'steps', id)
        mark(i)
        ended = ended + 1
      else
        local q = queued[jobp] or {ids = {}, at = {}}
        q.ids[#q.ids + 1] = id
        q.at[#q.at + 1] = i
        queued[jobp] = q
      end
    end
  end
  -- Kept an hour at least, whatever the TTL: the mark 'x' must outlast the id in a list.
  local keep = math.max(tonumber(ttl), 3600000)
  for jobp, q in pairs(queued) do
    local leased = {}
    for _, worker in ipairs(redis.call('SMEMBERS', jobp .. 'workers')) do
      for _, id in ipairs(redis.call('HKEYS', jobp .. 'leases:' .. worker)) do
        leased[id] = true
      end
    end
    for k, id in ipairs(q.ids) do
      if leased[id] then
        redis.call('ZADD', jobp .. 'cancel', 'NX', now, id)
      else
        local key = job(jobp, id)
        local a = redis.call('HGET', key, 'a')
        if redis.call('HSETNX', key, 'x', 1) == 1 then
          cancelled(jobp, id, tonumber(a or '0'), now, ce, keep, history)
        end
        redis.call('HDEL', jobp .. 'steps', id)
        mark(q.at[k])
        ended = ended + 1
      end
    end
  end
  each('HSET', wkey, marks)
  if w[6] ~= 'b' then  -- a batch counts its jobs, not its callbacks
    redis.call('HINCRBY', wkey, 'd', ended)
    redis.call('HINCRBY', wkey, 'x', ended)
  end
  finish(wkey)
end

-- fire(W, now): a closed batch whose jobs have all ended releases on_complete, and
-- on_success if every one succeeded (else cancels it).
local function fire(wkey, now)
  local w = redis.call('HMGET', wkey, 's', 'z', 'n', 'd', 'x', 'os', 'oc', 'P', 't', 'h', 'ce')
  if w[1] ~= 'R' or not w[2] or tonumber(w[4]) < tonumber(w[3]) then return end
  local good = tonumber(w[5]) == 0
  redis.call('HSET', wkey, 's', good and 'S' or 'F', 'e', now)
  if w[6] then
    if good then
      release(wkey, w[8], w[6], now)
    else
      local f = redis.call('HMGET', wkey, 'j:' .. w[6], 'e:' .. w[6])
      if not f[2] then  -- (else cancelled or deleted by hand already)
        local jobp = jobp_of(w[8], f[1])
        redis.call('HDEL', job(jobp, f[1]), 'b')
        redis.call('HDEL', jobp .. 'steps', f[1])
        redis.call('HSET', wkey, 'e:' .. w[6], 'C')
        cancelled(jobp, f[1], 0, now, w[11], w[9], w[10])
      end
    end
  end
  if w[7] then release(wkey, w[8], w[7], now) end
  finish(wkey)
end

-- step_ended(W, i, id, outcome, value, now): step i (0: a job of a batch) ended: S with
-- its JSON value, F or C.
step_ended = function(wkey, i, id, outcome, value, now)
  local ok = outcome == 'S'
  if i == 0 then
    if not redis.call('HGET', wkey, 's') then return end
    redis.call('HINCRBY', wkey, 'd', 1)
    if not ok then
      redis.call('HINCRBY', wkey, 'x', 1)
      redis.call('RPUSH', wkey .. ':f', id)
    end
    fire(wkey, now)
    return
  end
  local w = redis.call('HMGET', wkey, 's', 'k', 'P', 'm', 'e:' .. i, 'c:' .. i, 'o:' .. i,
                       'r:' .. i, 'j:' .. i, 'J', 'w:' .. i, 'd')
  if not w[1] or w[5] then return end  -- its workflow is gone; or it ended already
  if ok and w[8] and w[2] ~= 'b' then  -- (a step takes its value)
    redis.call('HSET', wkey, 'e:' .. i, outcome, 'v:' .. i, value)
  else
    redis.call('HSET', wkey, 'e:' .. i, outcome)
  end
  if w[2] == 'b' then return end  -- a batch's callback: the batch ended already
  -- (a join changes no count: its d, read above, is as good as any for the check below,
  -- which a join, always followed by a step, never passes)
  local d = tonumber(w[12])
  if w[9] then  -- a job, not a join
    d = redis.call('HINCRBY', wkey, 'd', 1)
    if not ok then redis.call('HINCRBY', wkey, 'x', 1) end
  end
  if w[1] ~= 'R' then return end
  if not ok and not w[6] then
    halt(wkey, 'F', now)
    return
  end
  -- One that ended while it still waited (cancelled by hand) holds those after it until
  -- the steps before it have ended: release() moves them on then.
  if not w[11] then advance(wkey, w[3], w[7], now) end
  if d >= tonumber(w[4]) - tonumber(w[10] or '0') and redis.call('HGET', wkey, 's') == 'R' then
    redis.call('HSET', wkey, 's', 'S', 'e', now)
    finish(wkey)
  end
end

-- settle(jobp, ids, outcomes, values, now): jobs of one queue ended (outcomes S, F or C;
-- values: the JSON value of each that succeeded, else false); those of a workflow or a
-- batch move it on.
local function settle(jobp, ids, outcomes, values, now)
  if #ids == 0 or redis.call('EXISTS', jobp .. 'steps') == 0 then return end
  local found, mine = each('HMGET', jobp .. 'steps', ids), {}
  for k = 1, #ids do
    if found[k] then ending[ids[k]] = true end
  end
  for k = 1, #ids do
    if found[k] then
      mine[#mine + 1] = ids[k]
      local wkey, i = string.match(found[k], '^(.*) (%d+)$')
      step_ended(wkey, tonumber(i), ids[k], outcomes[k], values[k], now)
    end
  end
  each('HDEL', jobp .. 'steps', mine)
end

-- stopping(jobp, id, attempts, now): a workflow's step put back on its queue (REQUEUE)
-- that its workflow asked to stop (a cancel request, lua/workflow.lua's halt) is not put
-- back: it ends as cancelled, and true. The caller settles it (with the rest of its call,
-- once it has put back what it puts back).
local function stopping(jobp, id, attempts, now)
  local found = redis.call('HGET', jobp .. 'steps', id)
  if not found or redis.call('ZREM', jobp .. 'cancel', id) == 0 then return false end
  local wkey = string.match(found, '^(.*) %d+$')
  local w = redis.call('HMGET', wkey, 'ce', 't', 'h')
  local error_json = w[1] or cjson.encode({exception_class_path = 'worker.exceptions.Cancelled',
                                            traceback = 'its workflow ended'})
  cancelled(jobp, id, attempts, now, error_json, tonumber(w[2] or '3600000'), w[3] or 10000)
  return true
end
