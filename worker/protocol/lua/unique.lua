--! uses: first
-- The id of the stored job a unique call's key names, or false: asked by an enqueue inside
-- a transaction, which sends its own job only at commit.
-- KEYS: unique   ARGV: job_key_prefix
return first(KEYS[1], ARGV[1]) or false
