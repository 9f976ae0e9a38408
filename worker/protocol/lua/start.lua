--! uses: clock, workflow
-- Start a workflow, or open a batch, in one atomic call (lua/workflow.lua): its hash, every
-- step's job (naming its workflow in 'W'; a step that waits for others holds 'b' and is on
-- no list) and the queues' `steps` entries; the steps that wait for none join their
-- queues. A large workflow's first steps were written by STAGE calls (lua/stage.lua), out
-- of sight until this call takes them: Redis runs no one call for long, and a workflow
-- whose enqueue broke off leaves nothing that runs (its staged keys expire). Replayed (its
-- reply was lost), it changes nothing.
-- KEYS: the workflow's hash
-- ARGV: prefix, kind ('w' or 'b'), id, keep_ms, history, cancelled_error_json, steps,
--   on_success step or '', on_complete step or '' (a batch), steps staged before (the
--   first ones), joins, then 11 per step not staged: job id ('': a join, whose other job
--   fields are ''), message, priority, max_attempts, run_after_ms or '', limit group or '',
--   how many steps it waits for, the steps after it ("2 3" or ''), its input spec or ''
--   (workflow.lua's input()), '1' if its failure does not stop the workflow, '1' if a step
--   takes its value
-- Returns how many steps it stored, or an error if the staged steps are gone.
local now, prefix, wkey = clock(), ARGV[1], KEYS[1]
if redis.call('EXISTS', wkey) == 1 then return 0 end
local m, staged = tonumber(ARGV[7]), tonumber(ARGV[10])
if staged > 0 then
  if redis.call('EXISTS', wkey .. ':new') == 0 then
    return redis.error_reply('the staged steps of workflow ' .. ARGV[3] .. ' are gone')
  end
  redis.call('RENAME', wkey .. ':new', wkey)
  redis.call('PERSIST', wkey)
end
local fields = {'id', ARGV[3], 'k', ARGV[2], 's', 'R', 'P', prefix, 't', ARGV[4], 'h', ARGV[5],
                'ce', ARGV[6], 'm', m, 'd', 0, 'x', 0}
for _, f in ipairs({{'n', ARGV[2] == 'b' and 0 or ''}, {'os', ARGV[8]}, {'oc', ARGV[9]},
                    {'J', ARGV[11] ~= '0' and ARGV[11] or ''}}) do
  if f[2] ~= '' then
    fields[#fields + 1] = f[1]
    fields[#fields + 1] = f[2]
  end
end
local entries = write_steps(prefix, ARGV[3], staged + 1, 12, m - staged, fields, nil)
each('HSET', wkey, fields)
-- Every step's `steps` entry, a call per queue; the staged ones' hashes kept for good, and
-- those of them that wait for none queued.
local names, queued = {}, {}
for i = 1, m do names[i] = 'j:' .. i end
local ids = each('HMGET', wkey, names)
if staged > 0 then
  names = {}
  for i = 1, staged do names[i] = 'q:' .. i end
  queued = each('HMGET', wkey, names)
  each('HDEL', wkey, names)
end
local members, first = {}, {}  -- first: the staged steps queued, before START's own
for i = 1, m do
  local id = ids[i]
  if id then
    local jobp = jobp_of(prefix, id)
    local list = members[jobp] or {}
    list[#list + 1] = id
    list[#list + 1] = wkey .. ' ' .. i
    members[jobp] = list
    if i <= staged then
      redis.call('PERSIST', job(jobp, id))
      if queued[i] then
        local p, due, limit = string.match(queued[i], '^([^|]*)|([^|]*)|(.*)$')
        first[#first + 1] = {jobp, id, tonumber(p), tonumber(due), limit}
      end
    end
  end
end
for jobp, list in pairs(members) do each('HSET', jobp .. 'steps', list) end
for _, e in ipairs(entries) do first[#first + 1] = e end
enter(first, now)
return m
