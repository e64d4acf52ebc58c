# Sourced by the benchmarks: builds khoso and sets $KHOSO to its binary (an absolute path). The
# release build by default; PROFILE=dev uses the dev build (dependencies at opt-level 1) instead
# of waiting for a release build, and its figures are slower. A binary already built (the one
# `cargo test` builds, in CI) is used as it is when $KHOSO names it.
PROFILE="${PROFILE:-release}"
if [ -n "${KHOSO:-}" ] && [ -x "$KHOSO" ]; then
  KHOSO="$(cd "$(dirname "$KHOSO")" && pwd)/$(basename "$KHOSO")"
  PROFILE="prebuilt"
elif [ "$PROFILE" = dev ]; then
  cargo build --locked --quiet
  KHOSO="$PWD/target/debug/khoso"
else
  cargo build --release --locked --quiet
  KHOSO="$PWD/target/release/khoso"
fi
