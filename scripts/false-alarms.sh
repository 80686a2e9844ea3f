#!/usr/bin/env bash
# False alarms on this machine: runs the release agent at its embedded
# defaults (no configuration file, a fresh state directory) for DURATION,
# then reports what it opened: incidents by severity (what an operator would
# be told: warning and above), each incident, and the anomalies behind them.
# Run it on a machine left alone, to measure a quiet host.
#
# Usage: scripts/false-alarms.sh DURATION   (e.g. 2h, 30m, 600s, 600)
# The state directory is kept when AEGIS_KEEP is set (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:?usage: scripts/false-alarms.sh DURATION (2h, 30m, 600s)}"
case "$duration" in
  *h) seconds=$(( ${duration%h} * 3600 )) ;;
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *s) seconds=${duration%s} ;;
  *[!0-9]*|'') echo "false-alarms: DURATION must be like 2h, 30m, 600s or 600, not \"$duration\"" >&2; exit 64 ;;
  *) seconds=$duration ;;
esac
[ "$seconds" -gt 0 ] || { echo "false-alarms: DURATION must be more than 0" >&2; exit 64; }

cargo build --release -q -p aegis
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
if [ -n "${AEGIS_KEEP:-}" ]; then
  home=$(mktemp -d /tmp/aegis-false-alarms.XXXXXX)
else
  home="$work"
fi
port=$(free_port)
started_ms=$(date +%s%3N)
HOME="$home" ./target/release/aegis run --listen "127.0.0.1:$port" >"$home/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$agent" 2>/dev/null || { echo "false-alarms: the agent stopped:" >&2; tail -5 "$home/agent.log" >&2; exit 1; }
  sleep 0.2
done
echo "false-alarms: the agent at its defaults for ${seconds}s on $(hostname) ($(nproc) cores), from $(date -u +%FT%TZ)"
[ -n "${AEGIS_KEEP:-}" ] && echo "false-alarms: its state is kept in $home"
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$agent" 2>/dev/null || { echo "false-alarms: the agent stopped early:" >&2; tail -5 "$home/agent.log" >&2; exit 1; }
  sleep 5
done
curl -fs "http://127.0.0.1:$port/api/v1/incidents?since=$started_ms&limit=500" >"$work/incidents.json"
curl -fs "http://127.0.0.1:$port/api/v1/anomalies?since=$started_ms&limit=1000" >"$work/anomalies.json"
python3 - "$work/incidents.json" "$work/anomalies.json" "$seconds" <<'PY'
import collections, datetime, json, sys
incidents = json.load(open(sys.argv[1]))
anomalies = json.load(open(sys.argv[2]))
hours = float(sys.argv[3]) / 3600
order = ["info", "warning", "critical"]
by = collections.Counter(i["severity"] for i in incidents)
told = sum(by[s] for s in order[1:])
print(f"over {hours:.2f} h: {len(incidents)} incidents ({told} of severity warning or above), {len(anomalies)} anomalies")
print("| severity | incidents | per day |")
print("|---|---|---|")
for s in order:
    print(f"| {s} | {by[s]} | {by[s] / hours * 24:.1f} |")
for i in sorted(incidents, key=lambda i: i["started_ms"]):
    at = datetime.datetime.fromtimestamp(i["started_ms"] / 1000, datetime.timezone.utc).strftime("%H:%M:%S")
    print(f"  {at}  {i['severity']:<8} {i['id']:<14} {i['summary']}")
    for e in i.get("evidence") or []:
        print(f"            evidence: {e['severity']} {e['kind']} on {e['series']}")
PY
