#!/usr/bin/env bash
# Table upkeep on a five-year warehouse filled as provinces fill it: every report file its own
# `khoso ingest` (a commit each, as every upload is). Prints the data files queries read and
# the time of a few reads before and after `khoso maintain`, then the same after a second
# upkeep (which finds nothing to do).
#
#   bench/upkeep.sh                          # SCALE=0.1, release build
#   SCALE=0.01 PROFILE=dev bench/upkeep.sh   # a small run with the dev build
#   LIMIT=8 …                                # at most 8 files of each kind
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

SCALE="${SCALE:-0.1}"
YEARS="${YEARS:-2021-2022..2025-2026}"
LIMIT="${LIMIT:-100000}"
source bench/build.sh
WORK="${WORK:-$(mktemp -d)}"
trap '[ -z "${KEEP:-}" ] && rm -rf "$WORK"' EXIT
echo "== khoso ($PROFILE build), $(nproc) cores, scale $SCALE, school years $YEARS, work in $WORK"

"$KHOSO" generate --scale "$SCALE" --years "$YEARS" --out "$WORK/reports" >/dev/null
"$KHOSO" --data "$WORK/data" init >/dev/null
FILES=0
START=$(date +%s.%N)
for kind in school university content; do
  files=("$WORK"/reports/"$kind"/*/*)
  for file in "${files[@]:0:$LIMIT}"; do
    "$KHOSO" --data "$WORK/data" ingest --kind "$kind" "$file" >/dev/null 2>&1
    FILES=$((FILES + 1))
  done
done
printf '%d files ingested one by one in %.1f s\n' "$FILES" "$(echo "$(date +%s.%N) - $START" | bc)"

# `reads LABEL`: the time of reads a planner and the dashboard make, each in its own process.
reads() {
  local label="$1" start elapsed
  { cat metrics.toml; echo "# bench $(date +%s%N)"; } >"$WORK/metrics.toml"
  for what in "submissions" "slices" "kpis"; do
    start=$(date +%s.%N)
    case "$what" in
      submissions) "$KHOSO" --data "$WORK/data" sql "SELECT kind, school_year, count(*) FROM submissions GROUP BY 1, 2" ;;
      slices) "$KHOSO" --data "$WORK/data" sql "SELECT school_year, province_code, sum(students) FROM school_reports GROUP BY 1, 2" ;;
      kpis) "$KHOSO" --data "$WORK/data" --metrics "$WORK/metrics.toml" kpi --by province ;;
    esac >/dev/null
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-8s %-52s %6.2f s\n' "$label" "$what: $(
      case "$what" in
        submissions) echo "count the submissions by kind and year" ;;
        slices) echo "sum the school reports by year and province" ;;
        kpis) echo "recompute every KPI by province (new metrics)" ;;
      esac)" "$elapsed"
  done
}

reads before
START=$(date +%s.%N)
"$KHOSO" --data "$WORK/data" maintain
printf 'khoso maintain took %.1f s\n' "$(echo "$(date +%s.%N) - $START" | bc)"
reads after
echo "== a second upkeep finds nothing to compact"
"$KHOSO" --data "$WORK/data" maintain | tail -1
