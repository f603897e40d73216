-- wrk script: POST one sample body with its headers; report the run as one JSON line.
-- Usage: wrk ... -s bench/post.lua <url> -- <body file> <marker> <tag> [Header: value ...]
--
-- <marker> is a string value of the body that the event id is made of (e.g. Bitrise's build_slug);
-- every request gets its own copy of it ("<marker>-<tag>-<thread>-<n>"), so that each one is a distinct
-- event as from a build farm, not a redelivery that memory would skip as a duplicate. "-" for none.

local parts = nil
local marker = nil
local tag = ""
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  tag = args[3]
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  if args[2] ~= "-" then
    marker = '"' .. args[2] .. '"'
    parts = {}
    local start = 1
    while true do
      local first, last = string.find(wrk.body, marker, start, true)
      if not first then break end
      table.insert(parts, string.sub(wrk.body, start, first - 1))
      start = last + 1
    end
    table.insert(parts, string.sub(wrk.body, start))
  end
end

function request()
  if parts == nil or #parts < 2 then
    return wrk.format()
  end
  counter = counter + 1
  local unique = marker:sub(1, -2) .. "-" .. tag .. "-" .. tostring(id) .. "-" .. tostring(counter) .. '"'
  return wrk.format(nil, nil, nil, table.concat(parts, unique))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"status":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout,
    e.status, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
