-- wrk script: refreshToken, each request with a refresh token that has not
-- been used yet. The tokens of $TOKENS_FILE (one per line) are dealt out to
-- the threads; each thread keeps its own queue, takes a token for every
-- request and puts back the one that the answer carries. There must be at
-- least one token per connection, and one per thread more (wrk asks each
-- thread for a request it never sends): a token is never in two requests at
-- once (that would be reuse, and revoke its session). A response without a
-- new pair counts as a failure, and its token is gone.
--
-- Each session's requests come from an address of its own (X-Forwarded-For,
-- which Tollgate believes from 127.0.0.1 here), as a crowd of clients'
-- would: the per-address refresh throttle then counts in a row per client,
-- not all 64 connections in one. ADDRESSES=1 sends them all from one. A
-- Tollgate refresh token begins with its session's id, so its first 21
-- characters (126 bits of the id) find the session's address again when the
-- next token comes back; bench/floor ignores the header.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  queue, address = {}, {}
  -- setup gave each thread its id, from 1 to $THREADS.
  local step, i = tonumber(os.getenv("THREADS") or "1"), 0
  local addresses = tonumber(os.getenv("ADDRESSES") or "0")
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if line ~= "" then
      local n = i
      if addresses > 0 then n = i % addresses end
      local addr = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256 + 1)
      address[line:sub(1, 21)] = addr
      if i % step == id - 1 then table.insert(queue, line) end
      i = i + 1
    end
  end
end

local query = '{"query":"mutation($t: String) { refreshToken(token: $t) { accessToken refreshToken } }","variables":{"t":"%s"}}'

function request()
  local token = table.remove(queue, 1) or "none-left"
  -- Headers given here replace wrk.headers: the content type goes again.
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address[token:sub(1, 21)] or "10.0.0.1"}
  return wrk.format(nil, nil, headers, string.format(query, token))
end

function response(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if status ~= 200 or not token or not body:find('"accessToken":"', 1, true) then
    fail("failed refresh", status, body)
    return
  end
  table.insert(queue, token)
end
