-- job(jobp, id): the key of a job's hash, jobp (P:{Q}:) and the id's token (what follows
-- "Q:"): the queue is in the hash tag already, and a key of 48 bytes or less is allocated
-- 16 bytes smaller than one over.
local function job(jobp, id)
  return jobp .. string.sub(id, (string.find(id, ':', 1, true) or 0) + 1)
end
-- since(id, ms): ms after the job was enqueued (the id's first 11 hex digits): the times a
-- job hash holds (t, l, f) are kept so, a few bytes each where the time itself takes ten.
local function since(id, ms)
  local token = string.sub(id, (string.find(id, ':', 1, true) or 0) + 1)
  return tonumber(ms) - tonumber(string.sub(token, 1, 11), 16)
end
