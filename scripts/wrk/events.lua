-- wrk script: POST /v1/events batches like loadgen's default workload (8 events,
-- 2 tags each, users drawn from 10,000 so most requests hit the profile cache).
-- Usage: wrk -t2 -c32 -d20s -s scripts/wrk/events.lua http://127.0.0.1:8080
local kinds = { "click", "view", "scroll", "purchase" }
local paths = { "/", "/docs", "/pricing", "/blog/allocators", "/api/items" }

request = function()
  local user = "user-" .. math.random(0, 9999)
  local events = {}
  for i = 1, 8 do
    events[i] = string.format('{"kind":"%s","path":"%s","ms":%d,"tags":["t%d","t%d"]}',
      kinds[math.random(#kinds)], paths[math.random(#paths)], math.random(1, 400),
      math.random(0, 9), math.random(0, 9))
  end
  local body = string.format('{"user":"%s","events":[%s]}', user, table.concat(events, ","))
  return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end
