#!/usr/bin/env bash
# Benchmark of SQL for planners: a release build of khoso on scale-1.0 generated data (five
# school years, every province, and a year of learner records), queried over the PostgreSQL wire
# protocol (psycopg) and the HTTP API by four analyst accounts, two clients each. Prints
# queries/s and p50/p95/p99 latency per query and path; then every row of school_reports and
# every learner record of a year read into polars over the wire (a named cursor), the HTTP
# API's Arrow stream and Arrow Flight SQL (ADBC): rows/s and the server's peak memory of each;
# then ADBC's own ceiling here (the same table from a Flight server holding it in memory) beside
# khoso's answer, with each side's CPU time.
#
#   bench/sql.sh                            # 10 s per query and path
#   SECONDS_PER_QUERY=30 bench/sql.sh
#   RECORDS_SCALE=0.1 bench/sql.sh          # fewer learner records (1.0: about 18.7 million)
#
# Needs Python with psycopg, polars and ADBC's Flight SQL driver ($KHOSO_TEST_PYTHON, else
# target/pyenv/bin/python: see .ci/run). The generated data is shared with bench/dashboard.sh
# ($BENCH_DIR, default target/bench-data; BENCH_SCALE makes it smaller).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_QUERY="${SECONDS_PER_QUERY:-10}"
PORT="${PORT:-18081}"
PG_PORT="${PG_PORT:-15433}"
FLIGHT_PORT="${FLIGHT_PORT:-15434}"
RECORDS_SCALE="${RECORDS_SCALE:-1.0}"
YEAR="${YEAR:-2024-2025}"
PYTHON="${KHOSO_TEST_PYTHON:-target/pyenv/bin/python}"

"$PYTHON" -c 'import psycopg, polars, adbc_driver_flightsql' \
  || { echo "Python with psycopg, polars and adbc-driver-flightsql is needed (see .ci/run)" >&2; exit 1; }
source bench/common.sh
RECORDS=$("$KHOSO" --data "$BENCH_DIR/data" sql "SELECT count(*) FROM learner_records WHERE school_year = '$YEAR'" \
  --format csv | tail -1)
if [ "$RECORDS" = 0 ]; then
  echo "== generating and loading the learner records of $YEAR (scale $RECORDS_SCALE)"
  rm -rf "$BENCH_DIR/records"
  "$KHOSO" generate --kind learner --scale "$RECORDS_SCALE" --years "$YEAR..$YEAR" --out "$BENCH_DIR/records"
  "$KHOSO" --data "$BENCH_DIR/data" ingest --kind learner "$BENCH_DIR/records/learner/$YEAR"/*.csv >/dev/null
  rm -rf "$BENCH_DIR/records"
fi
ACCOUNTS=()
RUN=$(date +%s)
for n in 1 2 3 4; do
  name="bench-$RUN-$n"
  token=$("$KHOSO" --data "$BENCH_DIR/data" users add "$name" --role analyst | tail -1)
  ACCOUNTS+=("$name=$token")
done

# Reading every row over the wire takes longer than the default time limit of a query.
start_server --pg-addr "127.0.0.1:$PG_PORT" --flight-addr "127.0.0.1:$FLIGHT_PORT" --query-timeout-s 900
echo "== $(nproc) cores; $("$KHOSO" --data "$BENCH_DIR/data" sql "SELECT count(*) FROM school_reports" --format csv | tail -1) school rows"
"$PYTHON" bench/sql_clients.py "$PG_PORT" "http://127.0.0.1:$PORT" "$SECONDS_PER_QUERY" "${ACCOUNTS[@]}"
echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
"$PYTHON" bench/sql_bulk.py "$SERVER" "$PG_PORT" "http://127.0.0.1:$PORT" "$FLIGHT_PORT" \
  "${ACCOUNTS[0]%%=*}" "${ACCOUNTS[0]#*=}" "$YEAR"
