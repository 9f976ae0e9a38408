--! uses: clock, workflow
-- Start a workflow, or open a batch, in one atomic call (lua/workflow.lua): its hash, every
-- step's job (naming its workflow in 'W'; a step that waits for others holds 'b' and is on
-- no list) and the queues' `steps` entries; the steps that wait for none join their queues. Replayed (its reply was
-- lost), it changes nothing.
-- KEYS: the workflow's hash
-- ARGV: prefix, kind ('w' or 'b'), id, keep_ms, history, cancelled_error_json, steps,
--   on_success step or '', on_complete step or '' (a batch), then 11 per step: job id
--   ('': a join, whose other job fields are ''), message, priority, max_attempts, run_after_ms or '', limit group or '', how many steps
--   it waits for, the steps after it ("2 3" or ''), its input spec or '' (workflow.lua's
--   input()), '1' if its failure does not stop the workflow, '1' if a step takes its value
-- Returns how many steps it stored.
local now, prefix, wkey = clock(), ARGV[1], KEYS[1]
if redis.call('EXISTS', wkey) == 1 then return 0 end
local m = tonumber(ARGV[7])
local fields = {'id', ARGV[3], 'k', ARGV[2], 's', 'R', 'P', prefix, 't', ARGV[4], 'h', ARGV[5],
                'ce', ARGV[6], 'm', m, 'd', 0, 'x', 0}
local function field(name, value)
  if value ~= '' then
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
end
if ARGV[2] == 'b' then
  field('n', 0)
  field('os', ARGV[8])
  field('oc', ARGV[9])
end
local entries, joins = {}, 0
for i = 1, m do
  local at = 10 + (i - 1) * 11
  local id, key, jobp = ARGV[at], nil, nil
  if id == '' then  -- a join (lua/workflow.lua): no job
    joins = joins + 1
  else
    jobp = jobp_of(prefix, id)
    key = job(jobp, id)
    store(key, ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5])
    redis.call('HSET', key, 'W', ARGV[3])
    redis.call('HSET', jobp .. 'steps', id, wkey .. ' ' .. i)
    field('j:' .. i, id)
  end
  field('o:' .. i, ARGV[at + 7])
  field('i:' .. i, ARGV[at + 8])
  field('c:' .. i, ARGV[at + 9])
  field('r:' .. i, ARGV[at + 10])
  if ARGV[at + 6] ~= '0' then
    field('w:' .. i, ARGV[at + 6])
    if key then redis.call('HSET', key, 'b', 1) end
  else
    entries[#entries + 1] = {jobp, id, at}
  end
end
field('J', joins > 0 and joins or '')
each('HSET', wkey, fields)
for _, e in ipairs(entries) do
  local at = e[3]
  enter(e[1], e[2], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 4]), ARGV[at + 5], now)
end
return m
