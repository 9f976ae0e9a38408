--! uses: ready
-- The ids that come after `anchor` in one of a queue's sets, in the order an operator's
-- action on every job a filter matches goes through it (worker/ops/browse.py). One call,
-- so that the workers' fetches meanwhile cannot shift where it goes on: they take jobs from
-- the heads of the lists, and a position counted from there would skip as many.
-- Lists, each from its head ('asc') or its tail ('desc'): after the anchor where it still
-- is; an anchor gone went with every job before it (taken by workers from the head, or
-- trimmed with the older ones), so it starts again from the first list. The ready lists
-- go highest priority first; the held lists by limit group.
-- A sorted set, by score then id ('asc' or 'desc'): after the anchor's score and id, where
-- it is or not (a delayed job falls due and leaves, a dead letter retried dies again with a
-- new score: what comes after them stays where it was).
-- KEYS: ready, priorities ('ready'); gates ('held'); the list ('list'); the set ('zset')
-- ARGV: kind, order ('asc' or 'desc'), count, anchor ('': from the start), its score
--   ('zset'), job_key_prefix ('held')
-- Returns the ids; for a sorted set, {id, score, id, score...}.
local kind, desc, count, anchor = ARGV[1], ARGV[2] == 'desc', tonumber(ARGV[3]), ARGV[4]
local out = {}
if kind == 'zset' then
  local key = KEYS[1]
  if anchor == '' then
    return redis.call(desc and 'ZREVRANGE' or 'ZRANGE', key, 0, count - 1, 'WITHSCORES')
  end
  local score, offset = tonumber(ARGV[5]), 0
  while true do
    local got
    if desc then
      got = redis.call('ZREVRANGEBYSCORE', key, score, '-inf', 'WITHSCORES', 'LIMIT', offset,
                       count)
    else
      got = redis.call('ZRANGEBYSCORE', key, score, '+inf', 'WITHSCORES', 'LIMIT', offset, count)
    end
    for i = 1, #got, 2 do
      local id = got[i]
      -- of the ids with the anchor's score, those on its far side (Redis orders them by id)
      if tonumber(got[i + 1]) ~= score or (desc and id < anchor) or (not desc and id > anchor) then
        out[#out + 1] = id
        out[#out + 1] = got[i + 1]
        if #out >= 2 * count then return out end
      end
    end
    if #got < 2 * count then return out end
    offset = offset + count
  end
end
local keys = {}
if kind == 'ready' then
  for _, list in ipairs(lists(KEYS[1], KEYS[2])) do keys[#keys + 1] = list[1] end
elseif kind == 'held' then
  local groups = redis.call('ZRANGE', KEYS[1], 0, -1)
  table.sort(groups)
  for _, g in ipairs(groups) do keys[#keys + 1] = ARGV[6] .. 'held:' .. g end
else
  keys[1] = KEYS[1]
end
local first, at = 1, nil  -- the list to go on in, and the anchor's position there
if anchor ~= '' then
  for i, key in ipairs(keys) do
    local found = redis.call('LPOS', key, anchor)
    if found then
      first, at = i, found
      break
    end
  end
end
for i = first, #keys do
  local want = count - #out
  if want <= 0 then break end
  local after = i == first and at
  if desc then
    local stop = (after and at or redis.call('LLEN', keys[i])) - 1
    if stop >= 0 then  -- (LRANGE 0 -1 would be the whole list)
      local got = redis.call('LRANGE', keys[i], math.max(stop - want + 1, 0), stop)
      for j = #got, 1, -1 do out[#out + 1] = got[j] end
    end
  else
    local start = after and at + 1 or 0
    for _, id in ipairs(redis.call('LRANGE', keys[i], start, start + want - 1)) do
      out[#out + 1] = id
    end
  end
end
return out
