#!/usr/bin/env bash
# The KPI refresh and a planner's query over the learner records, on the local engine and on a
# Ballista cluster of this machine (a scheduler and 1, then 2 executors started with `khoso
# cluster`), side by side. The warehouse is a folder every node reads. On one machine the
# cluster brings no speed-up: the figures show its overhead, and the answers must be the same
# (they are compared).
#
#   bench/cluster.sh                          # SCALE=0.2 (3.8 million learners), release build
#   SCALE=0.01 PROFILE=dev bench/cluster.sh   # a small run with the dev build
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${SCALE:-0.2}"
YEAR="${YEAR:-2024-2025}"
PORT="${PORT:-18450}"
source bench/build.sh
WORK="${WORK:-$(mktemp -d)}"
NODES=()
stop_nodes() { for pid in "${NODES[@]}"; do kill "$pid" 2>/dev/null || true; done; NODES=(); }
trap 'stop_nodes; [ -z "${KEEP:-}" ] && rm -rf "$WORK"' EXIT
echo "== khoso ($PROFILE build), $(nproc) cores, scale $SCALE, school year $YEAR, work in $WORK"

# `timed LABEL COMMAND…`: runs it, printing its wall time and peak memory; its output in $WORK/out.
timed() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
  read -r SECS KB <"$WORK/time"
  printf '%-52s %8.2f s  peak %6d MB\n' "$label" "$SECS" $((KB / 1024))
}

"$KHOSO" generate --scale "$SCALE" --years "$YEAR..$YEAR" --kind school,learner --out "$WORK/files" >/dev/null
"$KHOSO" --data "$WORK/data" init >/dev/null
"$KHOSO" --data "$WORK/data" ingest --kind school "$WORK"/files/school/"$YEAR"/* >/dev/null
"$KHOSO" --data "$WORK/data" ingest --kind learner "$WORK"/files/learner/"$YEAR"/*.csv >/dev/null
echo "   $("$KHOSO" --data "$WORK/data" sql --format csv 'SELECT count(*) FROM learner_records' | tail -1) learner rows"

QUERY="SELECT province_code, grade, gender, count(*) AS learners, sum(CASE WHEN online_ready THEN 1 ELSE 0 END) AS ready \
FROM learner_records GROUP BY ALL ORDER BY 1, 2, 3"

# `measure NAME [--cluster URL]`: every KPI by every dimension recomputed (a new metrics
# fingerprint), then the planner's query; their answers kept to compare.
measure() {
  local name="$1"; shift
  { cat metrics.toml; echo "# bench $name $(date +%s%N)"; } >"$WORK/metrics-$name.toml"
  timed "$name: every KPI, recomputed" \
    "$KHOSO" --data "$WORK/data" --metrics "$WORK/metrics-$name.toml" "$@" kpi --by grade --format csv
  timed "$name: learners by province, grade, gender" "$KHOSO" --data "$WORK/data" "$@" sql --format csv "$QUERY"
  cp "$WORK/out" "$WORK/query-$name.csv"
  "$KHOSO" --data "$WORK/data" --metrics "$WORK/metrics-$name.toml" sql --format csv \
    "SELECT kpi_id, dimension, unit, school_year, round(value, 9) FROM kpi_values ORDER BY 1, 2, 3, 4" >"$WORK/kpis-$name.csv"
}

node() {
  "$KHOSO" --data "$WORK/data" cluster "$@" >>"$WORK/nodes.log" 2>&1 &
  NODES+=($!)
}

measure local
node scheduler --bind "127.0.0.1:$PORT"
sleep 1
for executors in 1 2; do
  node executor --scheduler "df://127.0.0.1:$PORT" --bind "127.0.0.1:$((PORT + 2 * executors))"
  sleep 2
  measure "cluster of $executors" --cluster "df://127.0.0.1:$PORT"
  echo "   peak memory of the nodes: $(for pid in "${NODES[@]}"; do grep VmHWM "/proc/$pid/status" | awk '{printf "%d MB ", $2 / 1024}'; done)(scheduler, executors)"
  for what in query kpis; do
    cmp -s "$WORK/$what-local.csv" "$WORK/$what-cluster of $executors.csv" \
      || { echo "the $what differ on the cluster of $executors"; exit 1; }
  done
done
stop_nodes
echo "== the same answers on the local engine and both clusters"
