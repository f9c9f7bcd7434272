-- wrk script: POST { protected } with the bearer token in $TOKEN, and count
-- as a failure every response whose body is not the expected answer.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.body = '{"query":"{ protected }"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

local want = '{"data":{"protected":"This is a protected endpoint."}}'

function response(status, headers, body)
  if status ~= 200 or body:sub(1, #want) ~= want or body:sub(#want + 1):match("%S") then
    fail("failure", status, body)
  end
end
