#!/usr/bin/env bash
# Load benchmark of the dashboard: a release build of khoso on scale-1.0 generated data (five
# school years, every province), driven by wrk with concurrent clients. Prints requests/s and
# p50/p95/p99 latency for the overview, a KPI page, a province page and the API.
#
#   bench/dashboard.sh                      # 32 clients, 20 s per page
#   CLIENTS=64 SECONDS_PER_PAGE=30 bench/dashboard.sh
#
# Needs wrk (Debian: apt-get install wrk). The generated data is kept in $BENCH_DIR
# (default target/bench-data) and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${CLIENTS:-32}"
SECONDS_PER_PAGE="${SECONDS_PER_PAGE:-20}"
PORT="${PORT:-18080}"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
source bench/common.sh
"$KHOSO" --data "$BENCH_DIR/data" sql \
  "SELECT school_year, count(*) AS school_rows, sum(students) AS pupils FROM school_reports GROUP BY 1 ORDER BY 1"

start_server
BASE="http://127.0.0.1:$PORT"
curl -sf -o /dev/null "$BASE/"   # the first request reads the figures

echo "== $(nproc) cores, $CLIENTS clients, ${SECONDS_PER_PAGE}s per page, wrk -t2"
for page in "/" "/kpi/T1_pupils?year=2024-2025" "/kpi/T1_pupils?year=2024-2025&list=province_2025" \
            "/province/79" "/completeness" "/api/v1/kpis"; do
  printf '%-52s ' "GET $page"
  wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_PAGE}s" -s bench/latency.lua "$BASE$page" | tail -1
done
ETAG=$(curl -sI "$BASE/kpi/T1_pupils" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
printf '%-52s ' "GET /kpi/T1_pupils (If-None-Match: 304)"
wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_PAGE}s" -H "If-None-Match: $ETAG" -s bench/latency.lua "$BASE/kpi/T1_pupils" | tail -1
echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
