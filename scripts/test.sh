#!/usr/bin/env bash
# Runs every test of the workspace, after installing and starting what the
# tests need. Safe to run again: what is installed or running is reused.
# Every test must run here: AEGIS_REQUIRE_ALL=1 turns a test that would
# skip for want of a server (a plain `cargo test` on a laptop skips those,
# saying why) into a failure.
# Ends with one line that totals every test binary: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
ensure_test_dependencies

export AEGIS_REQUIRE_ALL=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
if grep -q '^SKIPPED ' "$log"; then
  echo "skipped tests:" >&2
  grep '^SKIPPED ' "$log" >&2
fi
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
