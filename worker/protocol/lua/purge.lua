-- Remove up to ARGV[2] jobs from one of a queue's sorted sets, their hashes with them.
-- KEYS: the set   ARGV: job_key_prefix, count   Returns how many were removed.
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[2]))
for i = 1, #popped, 2 do redis.call('DEL', ARGV[1] .. popped[i]) end
return #popped / 2
