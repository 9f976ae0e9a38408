-- token(id): what follows "Q:" in a job id.
local function token(id)
  return string.sub(id, (string.find(id, ':', 1, true) or 0) + 1)
end
-- job(jobp, id): the key of a job's hash, jobp (P:{Q}:) and the id's token: the queue is in
-- the hash tag already, and a key of 48 bytes or less is allocated 16 bytes smaller than one
-- over.
local function job(jobp, id)
  return jobp .. token(id)
end
-- since(id, ms): ms after the job was enqueued (the token's first 11 hex digits): the times
-- a job hash holds (t, l, f) are kept so, a few bytes each where the time itself takes ten.
local function since(id, ms)
  return tonumber(ms) - tonumber(string.sub(token(id), 1, 11), 16)
end
