-- wrk script: refreshToken, each request with a refresh token that has not
-- been used yet. The tokens of $TOKENS_FILE (one per line) are dealt out to
-- the threads; each thread keeps its own queue, takes a token for every
-- request and puts back the one that the answer carries. There must be at
-- least one token per connection, and one per thread more (wrk asks each
-- thread for a request it never sends): a token is never in two requests at
-- once (that would be reuse, and revoke its session). A response without a
-- new pair counts as a failure, and its token is gone.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  queue = {}
  -- setup gave each thread its id, from 1 to $THREADS.
  local step, i = tonumber(os.getenv("THREADS") or "1"), 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if line ~= "" then
      if i % step == id - 1 then table.insert(queue, line) end
      i = i + 1
    end
  end
end

local query = '{"query":"mutation($t: String) { refreshToken(token: $t) { accessToken refreshToken } }","variables":{"t":"%s"}}'

function request()
  local token = table.remove(queue, 1) or "none-left"
  return wrk.format(nil, nil, nil, string.format(query, token))
end

function response(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if status ~= 200 or not token or not body:find('"accessToken":"', 1, true) then
    fail("failed refresh", status, body)
    return
  end
  table.insert(queue, token)
end
