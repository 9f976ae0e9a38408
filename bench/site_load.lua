-- wrk script of bench/site_load.py: sends $METHOD requests (GET by default), counts the 202
-- answers and keeps the job id each names ("job_id"), writes the ids to $IDS_FILE at the
-- end, and prints the figures as one line the harness parses (times in microseconds).
wrk.method = os.getenv("METHOD") or "GET"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  accepted = 0
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    local id = string.match(body, '"job_id": "([^"]+)"')
    if id then
      ids[#ids + 1] = id
    end
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("IDS_FILE"), "w")
  local answered = 0
  for _, thread in ipairs(threads) do
    answered = answered + thread:get("accepted")
    for _, id in ipairs(thread:get("ids")) do
      out:write(id, "\n")
    end
  end
  out:close()
  local e = summary.errors
  io.write(string.format(
    "FIGURES requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d accepted=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout, answered))
end
