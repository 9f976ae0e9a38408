--! uses: wake
-- A wake-up token for an idle worker, left by a worker that stops: the BLPOP it gave up
-- may have taken the token meant for another (a retry its last ACK scheduled, say).
-- KEYS: notify
wake(KEYS[1])
