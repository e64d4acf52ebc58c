# Sourced by the benchmarks: builds the release binary ($KHOSO) and, once, generates and loads
# scale-1.0 reports (five school years, every province; BENCH_SCALE for another scale) into
# $BENCH_DIR/data (default target/bench-data), which later runs reuse; start_server runs khoso
# serve on them.
# PROFILE=dev uses the dev build (dependencies at opt-level 1) instead of waiting for a release
# build; its figures are slower and say so.
BENCH_DIR="${BENCH_DIR:-target/bench-data}"
BENCH_SCALE="${BENCH_SCALE:-1.0}"
source bench/build.sh
echo "== khoso built with the $PROFILE profile"

if [ ! -d "$BENCH_DIR/data/tables" ]; then
  rm -rf "$BENCH_DIR"
  echo "== generating scale-$BENCH_SCALE reports (2021-2022..2025-2026)"
  "$KHOSO" generate --scale "$BENCH_SCALE" --out "$BENCH_DIR/reports"
  echo "== loading them"
  /usr/bin/time -f "loaded in %e s, peak memory %M KB" \
    "$KHOSO" --data "$BENCH_DIR/data" init --sample --sample-dir "$BENCH_DIR/reports"
fi

# Starts `khoso serve` on the bench data at 127.0.0.1:$PORT with any further arguments, waits
# until it answers, and stops it when the script exits. Its pid is $SERVER.
start_server() {
  "$KHOSO" --data "$BENCH_DIR/data" serve --addr "127.0.0.1:$PORT" "$@" >/dev/null 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    # The web port opens last, after the SQL ones (bash's /dev/tcp: no curl needed).
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.2
  done
}
