#!/usr/bin/env bash
# Learner and teacher records at national volume, each step side by side with DuckDB on the same
# files in the same run: generate one school year (about 18.7 million learners and 1.25 million
# teachers at SCALE=1.0, in one file per province), ingest the learner files (validated,
# pseudonymised, committed) against DuckDB converting the same CSV files to Parquet (which
# validates nothing), refresh every record-based KPI by every dimension against DuckDB computing
# the same sums on its Parquet files, a planner's group-by over the year against the same in
# DuckDB, one big learner file (a province's rows, grown to BIG_ROWS: 10 million at SCALE=1.0)
# against DuckDB converting it all as text and typed, the largest province's file sent again into
# a warehouse of one school year and into one of five, the report files of five school years
# against DuckDB converting them, then the dashboard at 32 clients (wrk, when installed). Prints
# the time, rows/s and peak memory of each step, and the loads side by side.
#
#   bench/records.sh                          # SCALE=1.0, release build
#   SCALE=0.1 PROFILE=dev bench/records.sh    # a small run with the dev build
#
# Needs Python with duckdb ($KHOSO_TEST_PYTHON, else target/pyenv/bin/python: see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${SCALE:-1.0}"
YEAR="${YEAR:-2024-2025}"
PORT="${PORT:-18083}"
CLIENTS="${CLIENTS:-32}"
PYTHON="${KHOSO_TEST_PYTHON:-target/pyenv/bin/python}"
BIG_ROWS="${BIG_ROWS:-$(awk "BEGIN { printf \"%d\", 10000000 * $SCALE }")}"
"$PYTHON" -c 'import duckdb' || { echo "Python with duckdb is needed (see .ci/run)" >&2; exit 1; }
source bench/build.sh
WORK="${WORK:-$(mktemp -d)}"
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; [ -z "${KEEP:-}" ] && rm -rf "$WORK"' EXIT
echo "== khoso ($PROFILE build), $(nproc) cores, scale $SCALE, school year $YEAR, work in $WORK"

# `timed LABEL COMMAND…`: runs it, printing its wall time and peak memory.
timed() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
  read -r SECS KB <"$WORK/time"
  printf '%-58s %8.2f s  peak %6d MB\n' "$label" "$SECS" $((KB / 1024))
}

timed "generate (school, learner, teacher)" \
  "$KHOSO" generate --scale "$SCALE" --years "$YEAR..$YEAR" --kind school,learner,teacher --out "$WORK/files"
LEARNERS=$(cat "$WORK"/files/learner/"$YEAR"/*.csv | wc -l)
LEARNERS=$((LEARNERS - $(ls "$WORK"/files/learner/"$YEAR"/*.csv | wc -l)))
BYTES=$(du -cb "$WORK"/files/learner/"$YEAR"/*.csv | tail -1 | cut -f1)
echo "   $LEARNERS learner rows in $(ls "$WORK"/files/learner/"$YEAR" | wc -l) files, $((BYTES / 1024 / 1024)) MB"

"$KHOSO" --data "$WORK/data" init >/dev/null
timed "khoso ingest school reports (for reconciliation)" \
  "$KHOSO" --data "$WORK/data" ingest --kind school "$WORK"/files/school/"$YEAR"/*
timed "khoso ingest learner records (validate, pseudonymise, commit, KPIs)" \
  "$KHOSO" --data "$WORK/data" ingest --kind learner "$WORK"/files/learner/"$YEAR"/*.csv
KHOSO_INGEST=$SECS
timed "khoso ingest teacher records" \
  "$KHOSO" --data "$WORK/data" ingest --kind teacher "$WORK"/files/teacher/"$YEAR"/*.csv

timed "duckdb: the same learner and teacher CSV files to Parquet" "$PYTHON" - "$WORK" "$YEAR" <<'PY'
import duckdb, glob, os, sys
work, year = sys.argv[1], sys.argv[2]
# The columns in file order, named as in khoso's tables (the files' headers are Vietnamese or English).
names = {
    "learner": ["school_year", "province_code", "school_id", "learner_id", "level", "grade", "gender", "device",
                "home_internet", "online_ready", "domestic_platform", "digital_record"],
    "teacher": ["school_year", "province_code", "school_id", "teacher_id", "level", "online_ready",
                "digital_skills_trained", "digital_record"],
}
os.makedirs(f"{work}/duckdb", exist_ok=True)
con = duckdb.connect()
for kind, columns in names.items():
    for n, path in enumerate(sorted(glob.glob(f"{work}/files/{kind}/{year}/*.csv"))):
        con.execute(f"COPY (SELECT * FROM read_csv('{path}', header = true, all_varchar = true, names = {columns})) "
                    f"TO '{work}/duckdb/{kind}-{n:02}.parquet' (FORMAT parquet)")
PY
DUCK_INGEST=$SECS
timed "duckdb: the same learner CSV files to Parquet, typed (types detected)" "$PYTHON" - "$WORK" "$YEAR" <<'PY'
import duckdb, glob, os, sys
work, year = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for n, path in enumerate(sorted(glob.glob(f"{work}/files/learner/{year}/*.csv"))):
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header = true)) "
                f"TO '{work}/duckdb/typed-learner-{n:02}.parquet' (FORMAT parquet)")
PY
DUCK_TYPED=$SECS
TEACHERS=$(( $(cat "$WORK"/files/teacher/"$YEAR"/*.csv | wc -l) - $(ls "$WORK"/files/teacher/"$YEAR"/*.csv | wc -l) ))
echo "   rows/s: khoso (learners) $(echo "$LEARNERS / $KHOSO_INGEST" | bc), duckdb (learners and teachers) $(echo "($LEARNERS + $TEACHERS) / $DUCK_INGEST" | bc)"

# One big file: the rows of the largest province's file, again and again with new learner ids,
# up to BIG_ROWS (a province that sends all its learners in one file, as Hồ Chí Minh City does).
BIG="$WORK/big/learner-79-$YEAR.csv"
mkdir -p "$WORK/big"
"$PYTHON" - "$WORK/files/learner/$YEAR/learner-79-$YEAR.csv" "$BIG" "$BIG_ROWS" <<'PY'
import sys
source, target, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(source, encoding="utf-8-sig") as f:
    header, *rows = f.read().splitlines()
column = header.split(",").index("learner_id")
with open(target, "w", encoding="utf-8") as out:
    out.write(header + "\n")
    for n in range(wanted):
        cells = rows[n % len(rows)].split(",")
        cells[column] = f"{n + 100000000000:012d}"
        out.write(",".join(cells) + "\n")
PY
BIG_MB=$(( $(stat -c %s "$BIG") / 1024 / 1024 ))
echo "   one learner file: $BIG_ROWS rows, $BIG_MB MB"
"$KHOSO" --data "$WORK/big-data" init >/dev/null
timed "khoso ingest one learner file" "$KHOSO" --data "$WORK/big-data" ingest --kind learner "$BIG"
KHOSO_BIG=$SECS; KHOSO_BIG_MB=$((KB / 1024))
timed "duckdb: the one file to Parquet, all text" "$PYTHON" - "$BIG" "$WORK/big.parquet" <<'PY'
import duckdb, sys
duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', header = true, all_varchar = true)) "
                         f"TO '{sys.argv[2]}' (FORMAT parquet)")
PY
DUCK_BIG=$SECS
timed "duckdb: the one file to Parquet, typed (types detected)" "$PYTHON" - "$BIG" "$WORK/big-typed.parquet" <<'PY'
import duckdb, sys
duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', header = true)) TO '{sys.argv[2]}' (FORMAT parquet)")
PY
DUCK_BIG_TYPED=$SECS

# A province sends its learner file again (one blank line more: another file, the same rows):
# into the warehouse of this one school year, then into one holding five, which should take
# about as long (the refresh sums again only the re-sent year and province).
RESENT="$WORK/resend/learner-79-$YEAR.csv"
mkdir -p "$WORK/resend"
{ cat "$WORK/files/learner/$YEAR/learner-79-$YEAR.csv"; echo; } >"$RESENT"
timed "khoso: the largest province's file again, one year held" \
  "$KHOSO" --data "$WORK/data" ingest --kind learner "$RESENT"
RESEND_ONE=$SECS
FIRST=$(( ${YEAR%%-*} - 4 ))
"$KHOSO" generate --scale "$SCALE" --years "$FIRST-$((FIRST + 1))..$YEAR" --kind school,learner \
  --out "$WORK/five" >/dev/null
"$KHOSO" --data "$WORK/five-data" init >/dev/null
"$KHOSO" --data "$WORK/five-data" ingest --kind school "$WORK"/five/school/*/* >/dev/null 2>&1
for year_files in "$WORK"/five/learner/*; do
  "$KHOSO" --data "$WORK/five-data" ingest --kind learner "$year_files"/*.csv >/dev/null 2>&1
done
{ cat "$WORK/five/learner/$YEAR/learner-79-$YEAR.csv"; echo; } >"$RESENT"
timed "khoso: the largest province's file again, five years held" \
  "$KHOSO" --data "$WORK/five-data" ingest --kind learner "$RESENT"
RESEND_FIVE=$SECS
echo "   five years held / one: $(echo "$RESEND_FIVE / $RESEND_ONE" | bc -l | cut -c1-4)×"

# The KPIs again under new metrics (a changed fingerprint recomputes every value).
{ cat metrics.toml; echo "# bench $(date +%s)"; } >"$WORK/metrics.toml"
timed "khoso: every KPI by every dimension, recomputed" \
  "$KHOSO" --data "$WORK/data" --metrics "$WORK/metrics.toml" kpi --by grade
timed "duckdb: the record KPIs' sums by every dimension" "$PYTHON" - "$WORK" <<'PY'
import duckdb, sys
work = sys.argv[1]
con = duckdb.connect()
flags = {
    "learner": ["online_ready", "domestic_platform", "digital_record", "home_internet", "device = 'own'",
                "device IN ('own', 'shared')"],
    "teacher": ["online_ready", "digital_skills_trained", "digital_record"],
}
units = {
    "learner": ["'VN'", "province_code", "level", "grade", "gender"],
    "teacher": ["'VN'", "province_code", "level"],
}
for kind in flags:
    source = f"read_parquet('{work}/duckdb/{kind}-*.parquet')"
    for unit in units[kind]:
        for flag in flags[kind]:
            test = flag if " " in flag else f"{flag} IN ('TRUE', 'Có')"
            con.execute(f"SELECT school_year, {unit}, sum(CASE WHEN {test} THEN 1 ELSE 0 END), count(*) "
                        f"FROM {source} GROUP BY ALL").fetchall()
PY
timed "khoso sql: learners by province, grade, gender" \
  "$KHOSO" --data "$WORK/data" sql --format csv \
  "SELECT province_code, grade, gender, count(*) AS learners, sum(CASE WHEN online_ready THEN 1 ELSE 0 END) AS ready FROM learner_records GROUP BY ALL"
timed "duckdb: the same group-by on its Parquet files" "$PYTHON" - "$WORK" <<'PY'
import duckdb, sys
work = sys.argv[1]
duckdb.connect().execute(
    f"SELECT province_code, grade, gender, count(*), sum(CASE WHEN online_ready IN ('TRUE', 'Có') THEN 1 ELSE 0 END) "
    f"FROM read_parquet('{work}/duckdb/learner-*.parquet') GROUP BY ALL").fetchall()
PY

# The report files of five school years (school, university, content), as generated: CSV in UTF-8
# and UTF-16 with `,` `;` or tab, and workbooks. Both sides load the CSV files (DuckDB reads no
# workbook without its excel extension): khoso validates and commits them in one command (each
# file's kind known by its header; one KPI refresh; the flags of the checks on what came in),
# DuckDB converts each file to Parquet, as text, detecting its separator.
"$KHOSO" generate --scale "$SCALE" --out "$WORK/reports" >/dev/null
REPORTS=$(find "$WORK/reports" -name '*.csv' | wc -l)
echo "   $REPORTS report files (CSV) of five school years"
"$KHOSO" --data "$WORK/reports-data" init >/dev/null
timed "khoso ingest the report files (school, university, content)" bash -c '
  "$0" --data "$1/reports-data" ingest $(find "$1/reports" -name "*.csv" | sort)' "$KHOSO" "$WORK"
KHOSO_REPORTS=$SECS
timed "duckdb: the same report files to Parquet" "$PYTHON" - "$WORK" <<'PY'
import duckdb, glob, os, sys
work = sys.argv[1]
con = duckdb.connect()
os.makedirs(f"{work}/reports-duckdb", exist_ok=True)
for n, path in enumerate(sorted(glob.glob(f"{work}/reports/*/*/*.csv"))):
    with open(path, "rb") as f:
        head = f.read(2)
    encoding = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header = true, all_varchar = true, encoding = '{encoding}')) "
                f"TO '{work}/reports-duckdb/{n}.parquet' (FORMAT parquet)")
PY
DUCK_REPORTS=$SECS

echo "== the loads side by side (seconds; khoso validates, pseudonymises and commits, DuckDB converts)"
printf '%-44s %10s %10s %10s %12s\n' "load" "khoso" "duckdb" "typed" "khoso/duckdb"
printf '%-44s %10.2f %10.2f %10.2f %12.2f\n' "a school year of learner records, $LEARNERS rows" \
  "$KHOSO_INGEST" "$DUCK_INGEST" "$DUCK_TYPED" "$(echo "$KHOSO_INGEST / $DUCK_INGEST" | bc -l)"
printf '%-44s %10.2f %10.2f %10.2f %12.2f\n' "one learner file, $BIG_ROWS rows ($BIG_MB MB)" \
  "$KHOSO_BIG" "$DUCK_BIG" "$DUCK_BIG_TYPED" "$(echo "$KHOSO_BIG / $DUCK_BIG" | bc -l)"
printf '%-44s %10.2f %10.2f %10s %12.2f\n' "$REPORTS report files, five years" \
  "$KHOSO_REPORTS" "$DUCK_REPORTS" "-" "$(echo "$KHOSO_REPORTS / $DUCK_REPORTS" | bc -l)"
echo "   (the first line's DuckDB converts the teacher files too; khoso's one big file peaked at $KHOSO_BIG_MB MB)"

echo "== data directory: $(du -sh "$WORK/data" | cut -f1)"
if command -v wrk >/dev/null; then
  "$KHOSO" --data "$WORK/data" serve --addr "127.0.0.1:$PORT" >/dev/null 2>&1 &
  SERVER=$!
  # The server computes the KPIs under its own metrics before it listens: minutes at scale 1.0.
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 1; done
  timed "the first page (KPIs computed for the server's metrics)" curl -sf -o /dev/null "http://127.0.0.1:$PORT/"
  for page in "/" "/kpi/records_pupils_online_ready?year=$YEAR" "/kpi/T1_pupils?year=$YEAR"; do
    printf '%-58s ' "GET $page ($CLIENTS clients)"
    wrk -t2 -c"$CLIENTS" -d10s -s bench/latency.lua "http://127.0.0.1:$PORT$page" | tail -1
  done
  echo "server peak memory: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
else
  echo "(wrk not installed: no dashboard figures)"
fi
