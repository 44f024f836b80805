-- wrk script: POST /v1/events with bodies read from a file, one per line, sent in turn
-- (scripts/bench-loadgen writes loadgen's own default workload bodies there with
-- `cargo run --example workload_bodies`, so that both clients send the same bytes).
-- The requests are formatted once, at start-up; per request, wrk only picks the next one.
-- Usage: wrk -t1 -c64 -d10s -s scripts/wrk/bodies.lua http://127.0.0.1:8099 -- bodies.txt
local requests = {}
local next_request = 1

function init(args)
  local file = assert(io.open(args[1], "r"), "usage: -s bodies.lua URL -- BODIES_FILE")
  for body in file:lines() do
    requests[#requests + 1] =
      wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
  end
  file:close()
  assert(#requests > 0, "no bodies in " .. args[1])
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end
