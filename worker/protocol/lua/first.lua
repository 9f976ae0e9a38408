--! uses: job
-- first(unique, job_key_prefix): the id a uniqueness key names, if that job still exists
-- (the key can outlive its job, purged or expired), else nil.
local function first(unique, jobp)
  local id = redis.call('GET', unique)
  if id and redis.call('EXISTS', job(jobp, id)) == 1 then return id end
  return nil
end
