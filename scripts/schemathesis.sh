#!/usr/bin/env bash
# Runs schemathesis (property-based API testing, installed into a private
# virtualenv when missing) against a live agent, from the OpenAPI document
# the agent serves itself at /api/v1/openapi.json.
#
# Two passes: without a token (every change of state must be refused, and
# refused as the document says) and with the token (requests that change
# state are accepted or refused with a 4xx that says why). Every check
# schemathesis has is on: no 5xx, status codes, content types, headers and
# bodies conforming to the document, invalid input rejected, valid input
# accepted.
#
# The agent runs in dry-run mode on a private state directory, with one
# check and one container-free configuration, so that the manual actions
# the tool generates (arbitrary commands, signals, restarts) are decided
# and recorded but never executed on this machine.
#
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 40 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-40}"

venv="${AEGIS_SCHEMATHESIS_VENV:-$HOME/.cache/aegis/schemathesis-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "schemathesis: installing into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5' >&2
fi
st="$venv/bin/schemathesis"

cargo build -q -p aegis
bin=target/debug/aegis

work=$(mktemp -d)
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then
    kill -TERM "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token="schemathesis-token-0123456789"
cat >"$work/aegis.toml" <<EOF
[agent]
state_dir = "$work/state"

[collect]
interval = "1s"

[docker]
enabled = false

[heal]
dry_run = true

[[checks]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:9"
interval = "1s"
timeout = "500ms"

[api]
listen = "127.0.0.1:$port"
token = "$token"
EOF

"$bin" check-config "$work/aegis.toml" >/dev/null
"$bin" run --config "$work/aegis.toml" --log-format json 2>"$work/agent.log" &
agent_pid=$!

base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$agent_pid" 2>/dev/null; then
    echo "schemathesis: the agent exited before answering:" >&2
    cat "$work/agent.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null

run_pass() {
  local name=$1
  shift
  echo "schemathesis: pass '$name'" >&2
  "$st" run "$base/api/v1/openapi.json" \
    --checks all \
    --workers 1 \
    --request-timeout 10 \
    --suppress-health-check too_slow \
    --max-examples "$examples" \
    --seed 1 \
    --generation-database none \
    --report junit --report-dir "$work/report-$name" \
    --no-color \
    "$@"
}

# A manual action's rules go beyond what JSON Schema can say (argv[0] may
# not be a shell, a NUL byte in no argument; OpenAPI 3.0 has no tuple
# items): schema-valid bodies that break them are refused with 400, which
# "positive_data_acceptance" would count as a failure. That one operation
# runs without that one check; every other check still applies to it.
status=0
auth=(-H "Authorization: Bearer $token")
run_pass anonymous --exclude-operation-id manualAction || status=1
run_pass anonymous-action --include-operation-id manualAction \
  --exclude-checks positive_data_acceptance || status=1
run_pass token "${auth[@]}" --exclude-operation-id manualAction || status=1
run_pass token-action "${auth[@]}" --include-operation-id manualAction \
  --exclude-checks positive_data_acceptance || status=1

if ! kill -0 "$agent_pid" 2>/dev/null; then
  echo "schemathesis: the agent died during the run:" >&2
  tail -20 "$work/agent.log" >&2
  status=1
fi
if grep -q '"level":"ERROR"' "$work/agent.log" && grep -q 'panic' "$work/agent.log"; then
  echo "schemathesis: the agent logged a panic:" >&2
  grep 'panic' "$work/agent.log" | head -5 >&2
  status=1
fi
exit "$status"
