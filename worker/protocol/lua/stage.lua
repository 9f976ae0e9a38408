--! uses: workflow
-- Write some steps of a large workflow ahead of its START (lua/start.lua), out of sight:
-- their jobs on no list and in no `steps` entry, the workflow's fields of them in
-- <workflow key>:new, everything expiring after staging_ms unless START takes it.
-- KEYS: the workflow's hash
-- ARGV: prefix, workflow id, staging_ms, the first step's number, then 11 per step as
--   START takes them
local fields = {}
local count = (#ARGV - 4) / 11
write_steps(ARGV[1], ARGV[2], tonumber(ARGV[4]), 5, count, fields, ARGV[3])
each('HSET', KEYS[1] .. ':new', fields)
redis.call('PEXPIRE', KEYS[1] .. ':new', ARGV[3])
return count
