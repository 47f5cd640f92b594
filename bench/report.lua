-- wrk script for POST /api/v1/incidents: a grid worker's report per request, as a phone sends it.
-- Arguments (after "--"): DATA_FILE RUN_ID RETRY_SHARE.
--   DATA_FILE (written by bench/reportbench.py) defines `tokens` (access tokens by index) and
--   `points` ({lon, lat, token index, category code}: a point in that worker's cell).
--   Each request is a new report with a fresh client_uuid (RUN_ID, thread, per-thread counter),
--   or, with probability RETRY_SHARE, an exact copy of one of this thread's last 64 requests:
--   a client retrying after a lost answer, which must be answered as a replay.
-- Run it with as many threads as connections (-t C -c C): each thread then has one request
-- in flight, so every answer is matched to the request it answers.
-- wrk calls request() once more on the first thread before the run, to check the script, and
-- never sends that request: so a request is counted and becomes retryable only once it is
-- answered, and the one still in flight when the run stops is counted as possibly sent.
-- done() prints one JSON line: duration, requests, transport errors, latency (µs), fresh and
-- retried requests sent, answers created / replayed / other, and mismatches.

local threads = {}
local HISTORY = 64

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  dofile(args[1])
  run = tonumber(args[2])
  retry_share = tonumber(args[3])
  math.randomseed(run + 7919 * id)
  counter, fresh, retries = 0, 0, 0
  created, replayed, other = 0, 0, 0
  fresh_replayed, retry_created = 0, 0
  history, history_size, next_slot = {}, 0, 1
  pending, current, awaiting = nil, nil, false
  first_error = ""
end

local function remember(req)
  history[next_slot] = req
  next_slot = next_slot % HISTORY + 1
  history_size = math.min(history_size + 1, HISTORY)
end

function request()
  awaiting = true
  if history_size > 0 and math.random() < retry_share then
    pending = "retry"
    current = history[math.random(history_size)]
    return current
  end
  counter = counter + 1
  local p = points[math.random(#points)]
  local body = string.format(
    '{"client_uuid":"%08x-%04x-4000-8000-%012x","category":"%s","description":"bench report %d/%d",'
    .. '"location":{"type":"Point","coordinates":[%s,%s]},"occurred_at":"%s","source":"phone"}',
    run, id, counter, p[4], id, counter, p[1], p[2], os.date("!%Y-%m-%dT%H:%M:%S+00:00"))
  local headers = { ["Authorization"] = "Bearer " .. tokens[p[3]], ["Content-Type"] = "application/json" }
  pending = "fresh"
  current = wrk.format("POST", wrk.path, headers, body)
  return current
end

function response(status, headers, body)
  awaiting = false
  if pending == "fresh" then
    fresh = fresh + 1
    remember(current)
  else
    retries = retries + 1
  end
  if status == 201 then
    local replay = (headers["Idempotent-Replayed"] or headers["idempotent-replayed"]) == "true"
    if replay then
      replayed = replayed + 1
      if pending == "fresh" then fresh_replayed = fresh_replayed + 1 end
    else
      created = created + 1
      if pending == "retry" then retry_created = retry_created + 1 end
    end
  else
    other = other + 1
    if first_error == "" then
      first_error = status .. " " .. string.sub(string.gsub(body or "", '[%c"\\]', " "), 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local sums = { fresh = 0, retries = 0, created = 0, replayed = 0, other = 0, fresh_replayed = 0,
                 retry_created = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    for key, _ in pairs(sums) do
      sums[key] = sums[key] + thread:get(key)
    end
    -- a fresh report in flight at the stop may have been stored: count it as sent
    if thread:get("awaiting") and thread:get("pending") == "fresh" then sums.fresh = sums.fresh + 1 end
    if first == "" then first = thread:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format(
    '{"duration_us": %d, "requests": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d}, "mean_us": %.1f, "p50_us": %d, "p95_us": %d, "p99_us": %d, "fresh": %d, "retries": %d, '
    .. '"created": %d, "replayed": %d, "other_status": %d, "fresh_replayed": %d, "retry_created": %d, '
    .. '"first_error": "%s"}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    sums.fresh, sums.retries, sums.created, sums.replayed, sums.other, sums.fresh_replayed, sums.retry_created,
    first))
end
