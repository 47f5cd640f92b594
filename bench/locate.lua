-- wrk script for GET /api/v1/regions/locate: a uniform random point per request.
-- Arguments (after "--"): TOKEN LON_MIN LAT_MIN LON_MAX LAT_MAX.
-- done() prints one JSON line: duration, requests, errors, latency (µs), and how many
-- answers were 200 (a cell), 404 (no cell: water) or anything else, summed over threads.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  x0, y0, x1, y1 = tonumber(args[2]), tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  math.randomseed(1000 + id)
  ok, not_found, other = 0, 0, 0
  headers = { ["Authorization"] = "Bearer " .. token }
end

function request()
  local lon = x0 + math.random() * (x1 - x0)
  local lat = y0 + math.random() * (y1 - y0)
  local path = string.format("%s?lon=%.6f&lat=%.6f", wrk.path, lon, lat)
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 404 then
    not_found = not_found + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local sums = { ok = 0, not_found = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(sums) do
      sums[key] = sums[key] + thread:get(key)
    end
  end
  local e = summary.errors
  io.write(string.format(
    '{"duration_us": %d, "requests": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"mean_us": %.1f, "p50_us": %d, "p95_us": %d, "p99_us": %d, "ok": %d, "not_found": %d, "other_status": %d}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    sums.ok, sums.not_found, sums.other))
end
