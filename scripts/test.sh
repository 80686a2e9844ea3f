#!/usr/bin/env bash
# Runs every test of the workspace, after installing and starting what the
# tests need. Safe to run again: what is installed or running is reused.
# Every test must run here: AEGIS_REQUIRE_ALL=1 turns a test that would
# skip for want of a server (a plain `cargo test` on a laptop skips those,
# saying why) into a failure.
# Then schemathesis against a live agent, and the packaging checks (as root).
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

# Beyond cargo test: the HTTP API against its own OpenAPI document
# (schemathesis, a live agent), and installing the agent the ways it ships
# (cargo install, the Debian package, the unit; needs root for dpkg).
if [ $# -eq 0 ]; then
  scripts/schemathesis.sh 2>&1 | tail -40 | tee -a "$log" || status=1
  if [ "$(id -u)" -eq 0 ]; then
    scripts/test-packaging.sh 2>&1 | tee -a "$log" || status=1
  else
    echo "SKIPPED scripts/test-packaging.sh: needs root (dpkg -i)" | tee -a "$log"
    status=1
  fi
fi
if grep -q '^SKIPPED ' "$log"; then
  echo "skipped tests:" >&2
  grep '^SKIPPED ' "$log" >&2
fi
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
