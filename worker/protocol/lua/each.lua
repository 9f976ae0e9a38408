-- each(command, key, members): a command over a list of members, in slices (Lua's unpack
-- has a limit of a few thousand values); one call for many members costs a script much less
-- than a call per member. Returns the replies, concatenated.
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
