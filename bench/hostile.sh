#!/usr/bin/env bash
# The dashboard under attack: a release build of khoso on scale-1.0 generated data, with every
# query slot of three analyst accounts kept busy by hostile queries (a sum over a three-way
# cross join, a sorted cross join, a huge generate_series, an endless recursive CTE, a value
# grown past the cap) and a flood of wrong bearer tokens, while wrk measures the pages. Prints
# requests/s and p50/p95/p99 latency of each page under that load, how many hostile queries
# ended and how, and the server's peak memory.
#
#   bench/hostile.sh                          # 16 page clients, 20 s per page
#   CLIENTS=32 SECONDS_PER_PAGE=30 bench/hostile.sh
#
# Needs wrk and curl (Debian: apt-get install wrk curl). The generated data is kept in
# $BENCH_DIR (default target/bench-data) and reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${CLIENTS:-16}"
SECONDS_PER_PAGE="${SECONDS_PER_PAGE:-20}"
PORT="${PORT:-18081}"
TIMEOUT_S="${TIMEOUT_S:-10}"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
source bench/common.sh

TOKENS=()
NAMES=()
for i in 1 2 3; do
  name="bench-hostile-$$-$i"
  NAMES+=("$name")
  TOKENS+=("$("$KHOSO" --data "$BENCH_DIR/data" users add "$name" --role analyst | tail -1)")
done

start_server --query-timeout-s "$TIMEOUT_S"
BASE="http://127.0.0.1:$PORT"
curl -sf -o /dev/null "$BASE/"
LOG="$(mktemp -d)"
CLIENTS_RUNNING=()
cleanup() {
  kill "${CLIENTS_RUNNING[@]}" "$SERVER" 2>/dev/null || true
  for name in "${NAMES[@]}"; do "$KHOSO" --data "$BENCH_DIR/data" users revoke "$name" >/dev/null || true; done
  rm -rf "$LOG"
}
trap cleanup EXIT

QUERIES=(
  "SELECT sum(a.students + b.students + c.students) FROM school_reports a, school_reports b, school_reports c"
  "SELECT a.*, b.school_id FROM school_reports a CROSS JOIN school_reports b ORDER BY 1"
  "SELECT sum(value) FROM generate_series(1, 100000000000)"
  "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
  "SELECT length(repeat('x', 2000000000))"
)

# Two clients per account (its two query slots), each sending the hostile queries in turn.
hostile_client() {
  local token="$1" out="$2" i=0
  while true; do
    local query="${QUERIES[$((i % ${#QUERIES[@]}))]}"
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $token" \
      --data-binary "$query" "$BASE/api/v1/sql" >>"$out" || true
    i=$((i + 1))
  done
}
for token in "${TOKENS[@]}"; do
  for slot in 1 2; do
    hostile_client "$token" "$LOG/hostile-$slot-${token: -6}" &
    CLIENTS_RUNNING+=($!)
  done
done
# Wrong secrets for a real account id, as fast as curl sends them.
ID="$(echo "${TOKENS[0]}" | cut -d_ -f2)"
(while true; do
   curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer khoso_${ID}_$RANDOM$RANDOM" \
     "$BASE/api/v1/kpis" >>"$LOG/sign-ins" || true
 done) &
CLIENTS_RUNNING+=($!)
sleep 3

echo "== $(nproc) cores; 6 hostile queries at once (limit ${TIMEOUT_S} s) and a flood of wrong tokens;"
echo "   $CLIENTS page clients, ${SECONDS_PER_PAGE}s per page, wrk -t2"
for page in "/" "/kpi/T1_pupils?year=2024-2025" "/province/79" "/api/v1/kpis" "/healthz"; do
  printf '%-40s ' "GET $page"
  wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_PAGE}s" --timeout 10s -s bench/latency.lua "$BASE$page" | tail -1
done
echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
kill "${CLIENTS_RUNNING[@]}" 2>/dev/null || true
sleep 1
echo "hostile queries ended: $(cat "$LOG"/hostile-* | awk '{print $1}' | sort | uniq -c | tr '\n' ' ')"
echo "  their longest answer: $(cat "$LOG"/hostile-* | awk '{print $2}' | sort -n | tail -1) s (limit ${TIMEOUT_S} s)"
echo "wrong tokens answered: $(awk '{print $1}' "$LOG/sign-ins" | sort | uniq -c | tr '\n' ' ')"
