-- Appended by bench/run.py to every wrk script: done() prints the run's figures as one line of JSON,
-- marked "wrk-json ", which bench/run.py reads (latencies in microseconds).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  -- Scripts with a response() count their 2xx answers per thread, in total and inside a time window.
  local ok, ok_in_window, counted = 0, 0, false
  for _, thread in ipairs(threads) do
    local n = thread:get("ok")
    if n ~= nil then
      counted = true
      ok = ok + n
      ok_in_window = ok_in_window + thread:get("ok_in_window")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-json {"duration_us": %d, "requests": %d, "bytes": %d, "counted": %s, "ok": %d, ' ..
    '"ok_in_window": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.duration, summary.requests, summary.bytes, tostring(counted), ok, ok_in_window,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
