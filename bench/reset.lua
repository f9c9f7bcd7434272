-- wrk script: requestPasswordReset for $RESET_EMAIL; any answer but
-- {"requestPasswordReset":true} counts as a failure.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.body = string.format('{"query":"mutation($e: String!) { requestPasswordReset(email: $e) }","variables":{"e":"%s"}}',
  os.getenv("RESET_EMAIL"))
wrk.headers["Content-Type"] = "application/json"

function response(status, headers, body)
  if status ~= 200 or not body:find('"requestPasswordReset":true', 1, true) then
    fail("failed reset", status, body)
  end
end
