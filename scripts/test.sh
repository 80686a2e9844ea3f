#!/usr/bin/env bash
# Runs every test of the workspace, after installing and starting what the
# tests need. Safe to run again: what is installed or running is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
ensure_test_dependencies

cargo test --workspace "$@"
