-- What the wrk scripts of bench/run.sh share (each loads it with dofile):
-- setup numbers the threads (id, from 1), fail counts a response the script
-- refuses and shows the first one, and done prints the line run.sh reads:
--   RESULT <req/s> <p50 ms> <p99 ms> <failures> <requests>
-- where failures are wrk's own errors (connect, read, write, status,
-- timeout) plus every refused response.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function fail(what, status, body)
  bad = (bad or 0) + 1
  if bad == 1 then io.stderr:write("first " .. what .. ": " .. status .. " " .. body:sub(1, 300) .. "\n") end
end

function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  for _, t in ipairs(threads) do
    failed = failed + (t:get("bad") or 0)
  end
  io.write(string.format("RESULT %.2f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    failed, summary.requests))
end
