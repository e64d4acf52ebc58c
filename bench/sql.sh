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
PORT="${PORT:-18081}"
PG_PORT="${PG_PORT:-15433}"
PYTHON="${KHOSO_TEST_PYTHON:-target/pyenv/bin/python}"

"$PYTHON" -c 'import psycopg' || { echo "Python with psycopg is needed (see .ci/run)" >&2; exit 1; }
source bench/common.sh
ACCOUNTS=()
RUN=$(date +%s)
for n in 1 2 3 4; do
  name="bench-$RUN-$n"
  token=$("$KHOSO" --data "$BENCH_DIR/data" users add "$name" --role analyst | tail -1)
  ACCOUNTS+=("$name=$token")
done

start_server --pg-addr "127.0.0.1:$PG_PORT"
echo "== $(nproc) cores; $("$KHOSO" --data "$BENCH_DIR/data" sql "SELECT count(*) FROM school_reports" --format csv | tail -1) school rows"
"$PYTHON" bench/sql_clients.py "$PG_PORT" "http://127.0.0.1:$PORT" "$SECONDS_PER_QUERY" "${ACCOUNTS[@]}"
echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
