#!/usr/bin/env bash
# Benchmark of SQL for planners: a release build of khoso on scale-1.0 generated data (five
# school years, every province), queried over the PostgreSQL wire protocol (psycopg) and the HTTP
# API by four analyst accounts, two clients each. Prints queries/s and p50/p95/p99 latency per
# query and path, then how fast every row of school_reports comes out of each.
#
#   bench/sql.sh                            # 10 s per query and path
#   SECONDS_PER_QUERY=30 bench/sql.sh
#
# Needs Python with psycopg ($KHOSO_TEST_PYTHON, else target/pyenv/bin/python: see .ci/run). The
# generated data is shared with bench/dashboard.sh ($BENCH_DIR, default target/bench-data).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_QUERY="${SECONDS_PER_QUERY:-10}"
BENCH_DIR="${BENCH_DIR:-target/bench-data}"
PORT="${PORT:-18081}"
PG_PORT="${PG_PORT:-15433}"
PYTHON="${KHOSO_TEST_PYTHON:-target/pyenv/bin/python}"

"$PYTHON" -c 'import psycopg' || { echo "Python with psycopg is needed (see .ci/run)" >&2; exit 1; }
cargo build --release --locked --quiet
KHOSO=target/release/khoso

if [ ! -d "$BENCH_DIR/data/tables" ]; then
  rm -rf "$BENCH_DIR"
  echo "== generating scale-1.0 reports (2021-2022..2025-2026)"
  "$KHOSO" generate --scale 1.0 --out "$BENCH_DIR/reports"
  "$KHOSO" --data "$BENCH_DIR/data" init --sample --sample-dir "$BENCH_DIR/reports"
fi
ACCOUNTS=()
RUN=$(date +%s)
for n in 1 2 3 4; do
  name="bench-$RUN-$n"
  token=$("$KHOSO" --data "$BENCH_DIR/data" users add "$name" --role analyst | tail -1)
  ACCOUNTS+=("$name=$token")
done

"$KHOSO" --data "$BENCH_DIR/data" serve --addr "127.0.0.1:$PORT" --pg-addr "127.0.0.1:$PG_PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.2
done
echo "== $(nproc) cores; $("$KHOSO" --data "$BENCH_DIR/data" sql "SELECT count(*) FROM school_reports" --format csv | tail -1) school rows"
"$PYTHON" bench/sql_clients.py "$PG_PORT" "http://127.0.0.1:$PORT" "$SECONDS_PER_QUERY" "${ACCOUNTS[@]}"
echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
