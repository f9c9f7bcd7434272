-- wrk script: POST { protected } with the bearer token in $TOKEN, and count
-- as a failure every response whose body is not the expected answer.
wrk.method = "POST"
wrk.body = '{"query":"{ protected }"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

local want = '{"data":{"protected":"This is a protected endpoint."}}'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or body:sub(1, #want) ~= want or body:sub(#want + 1):match("%S") then
    bad = bad + 1
    if bad == 1 then io.stderr:write("first failure: " .. status .. " " .. body:sub(1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  for _, t in ipairs(threads) do
    failed = failed + t:get("bad")
  end
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    failed, summary.requests))
end
