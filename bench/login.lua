-- wrk script: the login mutation for $STORM_USERNAME / $PASSWORD; a response
-- without an access token counts as a failure.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.body = string.format(
  '{"query":"mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }","variables":{"u":"%s","p":"%s"}}',
  os.getenv("STORM_USERNAME"), os.getenv("PASSWORD"))
wrk.headers["Content-Type"] = "application/json"

function response(status, headers, body)
  if status ~= 200 or not body:find('"accessToken":"', 1, true) then
    fail("failed login", status, body)
  end
end
