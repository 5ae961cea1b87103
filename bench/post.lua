-- wrk script: POST canonical events to /v1/events with a bearer ingest token.
-- Arguments after "--": <token> <events per request> <occurred_at ISO 8601>
-- Every request carries fresh event ids (one event, or a JSON array of them).

local counter = 0
local threads = 0
local batch = 1
local occurred = "2026-01-01T00:00:00Z"

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  batch = tonumber(args[2]) or 1
  occurred = args[3] or occurred
end

local function event(n, k)
  return string.format(
    '{"id":"w%s-%d-%d","source":"bench","type":"message.created","occurred_at":"%s",'
      .. '"conversation_id":"wc%s-%d","channel":"chat","team":"support",'
      .. '"direction":"inbound","author":"customer"}',
    tid, n, k, occurred, tid, n % 100000
  )
end

function request()
  counter = counter + 1
  local body
  if batch == 1 then
    body = event(counter, 0)
  else
    local parts = {}
    for k = 1, batch do
      parts[k] = event(counter, k)
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/v1/events", nil, body)
end
