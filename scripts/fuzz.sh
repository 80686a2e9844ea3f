#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), one after another,
# with libFuzzer under nightly Rust (`cargo fuzz`, installed when missing).
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and its
# kept regression inputs (fuzz/regressions/TARGET), and grows its own corpus
# in fuzz/corpus/TARGET (not committed). A crash stops the run: its input is
# in fuzz/artifacts/TARGET; once fixed, copy it to fuzz/regressions/TARGET so
# `cargo test` in fuzz/ replays it for good.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   AEGIS_FUZZ_JOBS=N runs N targets at once (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: nightly Rust is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# The workspace's release profile trades build time for code size (fat LTO,
# one codegen unit, opt-level "s"); a fuzzer wants the opposite, and 15
# fat-LTO links take half an hour here.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3

# One build for all, so that the time given is spent fuzzing.
(cd fuzz && cargo +nightly fuzz build -O --debug-assertions --features libfuzzer)

# The binaries the build made, run directly: `cargo fuzz run` would rebuild
# them (minutes, with the sanitizer) whenever the code changed mid-run.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bindir="$PWD/target/$triple/release"
export bindir

run_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" fuzz/artifacts/"$t"
  local log="fuzz/artifacts/$t.log"
  if (cd fuzz && ASAN_OPTIONS=detect_odr_violation=0 "$bindir/$t" \
      -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -rss_limit_mb=2048 \
      -max_len=65536 -timeout=10 -print_final_stats=1 \
      "corpus/$t" "seeds/$t" "regressions/$t") >"$log" 2>&1; then
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    echo "$t: ok, $runs runs in ${secs}s, coverage $cov, corpus $(find "fuzz/corpus/$t" -type f | wc -l) inputs"
  else
    echo "$t: FAILED (log: $log)"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -5
    return 1
  fi
}

jobs="${AEGIS_FUZZ_JOBS:-1}"
failed=0
if [ "$jobs" -le 1 ]; then
  for t in "${targets[@]}"; do run_one "$t" || failed=1; done
else
  export -f run_one
  export secs
  printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || failed=1
fi
exit "$failed"
