--! uses: each
-- The ready lists of a queue: jobs of priority 0 wait in `base`, of priority p in base:p;
-- the sorted set `levels` holds each p other than 0 whose list may hold jobs (score -p:
-- highest first). A list is cheaper than a sorted set by a hundred bytes a job, and popping
-- it cheaper too; priorities other than 0 are rare, and each costs a list.
local function level(base, p)
  if p == 0 then return base end
  return base .. ':' .. p
end
-- push(base, levels, p, ids, front): ids of priority p go to the back of its list (new,
-- due, retried), or with front to its front, in the order given (put back: they were next).
local function push(base, levels, p, ids, front)
  if #ids == 0 then return end
  if p ~= 0 then redis.call('ZADD', levels, -p, p) end
  if front then
    local reversed = {}
    for i = #ids, 1, -1 do reversed[#reversed + 1] = ids[i] end
    each('LPUSH', level(base, p), reversed)
  else
    each('RPUSH', level(base, p), ids)
  end
end
-- lists(base, levels): {key, p} of each list, highest priority first.
local function lists(base, levels)
  local out, zero = {}, false
  for _, p in ipairs(redis.call('ZRANGE', levels, 0, -1)) do
    p = tonumber(p)
    if p < 0 and not zero then
      out[#out + 1] = {base, 0}
      zero = true
    end
    out[#out + 1] = {level(base, p), p}
  end
  if not zero then out[#out + 1] = {base, 0} end
  return out
end
-- pop(base, levels, count): up to count ids, highest priority first, then first in first
-- out; the priority of each; the lists.
local function pop(base, levels, count)
  local ids, priorities, found = {}, {}, lists(base, levels)
  for _, list in ipairs(found) do
    local want = count - #ids
    if want <= 0 then break end
    local got = redis.call('LPOP', list[1], want)
    local n = got and #got or 0
    for i = 1, n do
      ids[#ids + 1] = got[i]
      priorities[#priorities + 1] = list[2]
    end
    if n < want and list[2] ~= 0 then redis.call('ZREM', levels, list[2]) end
  end
  return ids, priorities, found
end
-- waiting(found): how many ids the lists hold (found: as lists() returns them).
local function waiting(found)
  local n = 0
  for _, list in ipairs(found) do n = n + redis.call('LLEN', list[1]) end
  return n
end
