#!/usr/bin/env bash
# Work that could outlive its budget, each reproduced against `khoso serve --query-timeout-s 5
# --query-memory-mb 256` on the scale-1.0 bench data: for each, how it ended (HTTP status or
# SQLSTATE), how long it took, how much the server grew (its resident memory before, and its
# peak after), and the CPU the server used in the second from two seconds after the deadline
# (0 when the work is really over), then whether `/` still answered within a second.
#
#   bench/budget.sh                 # release build (PROFILE=dev for the dev build)
#   BLANK_MB=5 bench/budget.sh      # a smaller file of blank rows
#
# Needs curl and a Python with psycopg (KHOSO_TEST_PYTHON, else target/pyenv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-18083}"
PG_PORT="${PG_PORT:-18084}"
TIMEOUT_S=5
BLANK_MB="${BLANK_MB:-49}"
PYTHON="${KHOSO_TEST_PYTHON:-target/pyenv/bin/python}"
source bench/common.sh

NAME="bench-budget-$$"
TOKEN="$("$KHOSO" --data "$BENCH_DIR/data" users add "$NAME" --role analyst | tail -1)"
PROVINCE="bench-budget-province-$$"
PROVINCE_TOKEN="$("$KHOSO" --data "$BENCH_DIR/data" users add "$PROVINCE" --role province --province 01 | tail -1)"
WORK="$(mktemp -d)"
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  for name in "$NAME" "$PROVINCE"; do "$KHOSO" --data "$BENCH_DIR/data" users revoke "$name" >/dev/null || true; done
  rm -rf "$WORK"
}
start_server --query-timeout-s "$TIMEOUT_S" --query-memory-mb 256 --max-upload-mb 60 --pg-addr "127.0.0.1:$PG_PORT"
trap cleanup EXIT
BASE="http://127.0.0.1:$PORT"

rss_mb() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER/status"; }
hwm_mb() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

# measure NAME COMMAND...: runs the command (its output is how it ended), then waits until two
# seconds past the deadline and measures the server's CPU over one second.
printf '%-34s %-28s %8s %8s %8s %10s %8s\n' "reproduction" "ended" "seconds" "rss MB" "peak MB" "cpu after" "/ (s)"
measure() {
  local name="$1"; shift
  local before started ended seconds ticks idle page
  before="$(rss_mb)"
  started="$(date +%s.%N)"
  ended="$("$@" 2>&1 | tail -1 | cut -c1-28)"
  seconds="$(echo "$(date +%s.%N) - $started" | bc)"
  local wait
  wait="$(echo "$started + $TIMEOUT_S + 2 - $(date +%s.%N)" | bc)"
  if [ "$(echo "$wait > 0" | bc)" = 1 ]; then sleep "$wait"; fi
  ticks="$(cpu_ticks)"; sleep 1; idle="$(echo "($(cpu_ticks) - $ticks) / 100" | bc -l)"
  page="$(curl -s -o /dev/null -m 5 -w '%{time_total}' "$BASE/")"
  printf '%-34s %-28s %8.2f %8s %8s %9.2fs %8.3f\n' "$name" "$ended" "$seconds" "$before" "$(hwm_mb)" "$idle" "$page"
}

sql_to() {  # FORMAT QUERY: POST /api/v1/sql accepting FORMAT; prints the status
  curl -s -o /dev/null -w '%{http_code}\n' -m 60 -H "Authorization: Bearer $TOKEN" -H "Accept: $1" \
    --data-binary "$2" "$BASE/api/v1/sql"
}
chart() {  # KIND FORMAT: a chart of a value that is Infinity, as the issue's reproduction
  curl -s -o /dev/null -w '%{http_code}\n' -m 60 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary "{\"sql\": \"SELECT school_year, CAST('Infinity' AS DOUBLE) AS share, CAST('Infinity' AS DOUBLE) AS twice FROM (VALUES ('2023-2024'),('2024-2025')) t(school_year)\", \"chart\": \"$1\", \"x\": \"$3\", \"y\": \"share\", \"format\": \"$2\"}" \
    "$BASE/api/v1/sql/chart"
}
blank_rows() {
  python3 -c "import sys; sys.stdout.buffer.write(b'school_year,province_code,school_id,level\n' + b',\n' * ($BLANK_MB * 512 * 1024))" >"$WORK/blank.csv"
  curl -s -o /dev/null -w '%{http_code}\n' -m 120 -H "Authorization: Bearer $PROVINCE_TOKEN" -H 'Content-Type: text/csv' \
    --data-binary "@$WORK/blank.csv" "$BASE/api/v1/submissions?kind=school&year=2024-2025&dry_run=true"
}
downloads() {  # 80 CSV downloads at once, none read for 10 s
  for _ in $(seq 1 80); do
    curl -s -o /dev/null -m 10 --limit-rate 1 -H "Authorization: Bearer $TOKEN" -H 'Accept: text/csv' \
      --data-binary "SELECT a.*, b.school_id AS b FROM school_reports a, school_reports b" "$BASE/api/v1/sql" &
  done
  wait
  echo "80 sent"
}
wire() {  # SCENARIO SECONDS
  "$PYTHON" tests/it/budget_client.py "$1" "$PG_PORT" "$NAME" "$TOKEN" "$2" | python3 -c \
    "import json, sys; a = json.load(sys.stdin); print(' '.join(k + '=' + str(v.get('sqlstate', v.get('rows')) if isinstance(v, dict) else v) for k, v in a.items()))"
}

measure "line chart of Infinity" chart line svg school_year
measure "scatter chart of Infinity (PNG)" chart scatter png twice
measure "blank rows (${BLANK_MB} MB dry run)" blank_rows
measure "XLSX of a 1M-row × 31-column result" sql_to application/vnd.openxmlformats-officedocument.spreadsheetml.sheet \
  "SELECT a.* FROM school_reports a, (SELECT 1 FROM school_reports LIMIT 8) b"
measure "rows over the wire, max_rows = 0" wire unread 8
measure "FETCH ALL" wire fetch_all 0
measure "a cursor left open" wire cursor 8
measure "40 cursors on one connection" wire cursors 8
measure "levenshtein of 150,000 characters" sql_to application/json \
  "SELECT levenshtein(repeat('a', 150000), repeat('b', 150000))"
measure "80 CSV downloads, unread" downloads
measure "a client's cancel" wire cancel 0
