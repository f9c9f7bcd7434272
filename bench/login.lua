-- wrk script: the login mutation for $STORM_USERNAME / $PASSWORD; a response
-- without an access token counts as a failure.
wrk.method = "POST"
wrk.body = string.format(
  '{"query":"mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }","variables":{"u":"%s","p":"%s"}}',
  os.getenv("STORM_USERNAME"), os.getenv("PASSWORD"))
wrk.headers["Content-Type"] = "application/json"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"accessToken":"', 1, true) then
    bad = bad + 1
    if bad == 1 then io.stderr:write("first failed login: " .. status .. " " .. body:sub(1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  for _, t in ipairs(threads) do
    failed = failed + t:get("bad")
  end
  io.write(string.format("RESULT %.2f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    failed, summary.requests))
end
