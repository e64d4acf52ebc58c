-- wrk script: prints requests/s and the p50/p95/p99 latency of the run on one line.
-- Status codes other than 200/304 are counted and reported, so a failing server is not
-- mistaken for a fast one.
local failures = 0

response = function(status, headers, body)
  if status ~= 200 and status ~= 304 then
    failures = failures + 1
  end
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "requests/s %.0f  p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms  requests %d  errors %d\n",
    summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end
