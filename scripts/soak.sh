#!/usr/bin/env bash
# The whole agent, release build, at 100x its normal load for SECONDS
# (default 3600), with detection, checks and healing on; every bound checked
# and RSS sampled every 10 s. Prints a report (and writes it to
# $AEGIS_SOAK_OUT when set).
#
# "Normal" is the agent on its embedded defaults on this machine: its
# observations per second are measured first, for 30 s, then the soak runs
# with collection at 100 ms, 200 checks at 100 ms to 1 s, most at 500 ms (http against a
# loopback server, one of them flapping and healed by a command action,
# tcp, process, program and filesystem checks) and a manual action posted
# every second. The report gives the soak's observation rate as a multiple
# of the normal one; the run fails below 100x.
#
# Usage: scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3600}"
cargo build --release -q -p aegis
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bin=./target/release/aegis

wait_up() {
  for _ in $(seq 100); do curl -sf "127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done
  echo "the agent did not start"; exit 1
}
status() { curl -sf "127.0.0.1:$1/api/v1/status"; }

# 1. The normal rate: embedded defaults (no Docker engine reachable).
port=$(free_port)
env -u DOCKER_HOST HOME="$work/normal" "$bin" run --listen "127.0.0.1:$port" \
  --state-dir "$work/normal" --log-format json >"$work/normal.log" 2>&1 &
normal_pid=$!
pids+=("$normal_pid")
wait_up "$port"
sleep 10 # the first cycles (rates need two samples) before counting
a=$(status "$port" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["observations_total"], s["uptime_seconds"])')
sleep 30
b=$(status "$port" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["observations_total"], s["uptime_seconds"])')
kill "$normal_pid"; wait "$normal_pid" 2>/dev/null || true
normal_rate=$(python3 -c "a='$a'.split(); b='$b'.split(); print((int(b[0]) - int(a[0])) / (float(b[1]) - float(a[1])))")

# 2. A loopback server: /ok always answers 200, /flappy fails 20 s of every 60.
web_port=$(free_port)
python3 - "$web_port" >"$work/web.log" 2>&1 <<'PY' &
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bad = self.path == "/flappy" and int(time.time()) % 60 >= 40
        body = b"down" if bad else b"ok"
        self.send_response(500 if bad else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)
for _ in $(seq 50); do curl -sf "127.0.0.1:$web_port/ok" >/dev/null && break; sleep 0.1; done

# 3. The soak configuration.
token=soak-token-long-enough
{
  cat <<TOML
[collect]
interval = "100ms"
[api]
token = "$token"
[heal]
cooldown = "1s"
rate_max = 1000
budget_max = 1000000
[[heal.rules]]
name = "heal flappy"
on = "check_failed"
check = "flappy"
actions = [{ kind = "command", argv = ["true"] }]
[[checks]]
name = "flappy"
kind = "http"
url = "http://127.0.0.1:$web_port/flappy"
interval = "100ms"
timeout = "100ms"
failure_threshold = 3
[[checks]]
name = "port"
kind = "tcp"
address = "127.0.0.1:$web_port"
interval = "100ms"
timeout = "100ms"
[[checks]]
name = "python"
kind = "process"
comm = "python3"
interval = "500ms"
timeout = "500ms"
[[checks]]
name = "true"
kind = "program"
argv = ["true"]
interval = "1s"
timeout = "1s"
[[checks]]
name = "root"
kind = "filesystem"
mount = "/"
max_used_ratio = 0.999
interval = "1s"
timeout = "1s"
TOML
  for i in $(seq 195); do
    cat <<TOML
[[checks]]
name = "web-$i"
kind = "http"
url = "http://127.0.0.1:$web_port/ok"
interval = "500ms"
timeout = "500ms"
TOML
  done
} >"$work/soak.toml"
"$bin" check-config "$work/soak.toml" >/dev/null

port=$(free_port)
env -u DOCKER_HOST HOME="$work/soak" "$bin" run --config "$work/soak.toml" --listen "127.0.0.1:$port" \
  --state-dir "$work/soak" --log-format json >"$work/soak.log" 2>&1 &
agent=$!
pids+=("$agent")
wait_up "$port"

# A manual action every second, through the guard like any other.
(
  while sleep 1; do
    curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d '{"target": "manual", "action": {"kind": "command", "argv": ["true"]}}' \
      "127.0.0.1:$port/api/v1/actions" >/dev/null || true
  done
) &
pids+=($!)

# 4. Sample every 10 s: RSS, the bounds, what was done.
samples="$work/samples"
: >"$samples"
start=$(date +%s)
while [ $(($(date +%s) - start)) -lt "$secs" ]; do
  sleep 10
  kill -0 "$agent" 2>/dev/null || { echo "the agent died:"; tail -20 "$work/soak.log"; exit 1; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent/status")
  fds=$(ls "/proc/$agent/fd" | wc -l)
  status "$port" | python3 -c "
import json, sys
s = json.load(sys.stdin)
s['rss_kib'] = $rss
s['fds'] = $fds
s['at'] = $(date +%s) - $start
print(json.dumps(s))" >>"$samples" || echo "status unreadable at $(($(date +%s) - start)) s" >&2
done

actions=$(curl -sf "127.0.0.1:$port/api/v1/actions?limit=1000&since=1h" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
kill -TERM "$agent"
wait "$agent" 2>/dev/null || true

python3 - "$samples" "$normal_rate" "$secs" "$actions" "$work/soak/aegis.db" <<'PY' | tee "${AEGIS_SOAK_OUT:-/dev/null}"
import json, os, sys
path, normal, secs, actions, db = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in open(path) if l.strip()]
first, last = rows[0], rows[-1]
rate = (last["observations_total"] - first["observations_total"]) / max(1e-9, last["uptime_seconds"] - first["uptime_seconds"])
rss = [(r["at"], r["rss_kib"]) for r in rows]
def at(frac):
    return rss[min(len(rss) - 1, int(frac * (len(rss) - 1)))][1]
half = [v for t, v in rss if t >= secs / 2]
bounds_ok = all(
    r["channel"]["len"] <= r["channel"]["capacity"]
    and r["history"]["series"]["len"] <= r["history"]["series"]["capacity"]
    and r["history"]["points"]["len"] <= r["history"]["points"]["capacity"]
    and r["store"]["queue"]["len"] <= r["store"]["queue"]["capacity"]
    and r["store"]["events"]["len"] <= max(1, r["store"]["events"]["capacity"])
    for r in rows)
outcomes = {}
for a, o, n in (last.get("heal") or {}).get("outcomes", []):
    outcomes[f"{a}/{o}"] = n
checks = last.get("checks", [])
print(f"soak: {secs} s, {len(rows)} samples every 10 s")
print(f"normal rate (embedded defaults): {normal:.1f} observations/s")
print(f"soak rate: {rate:.0f} observations/s = {rate / normal:.0f}x normal")
print(f"checks: {len(checks)}, failing at the end: {sum(1 for c in checks if c.get('state') == 'failing')}")
print(f"healing records by action/outcome: {json.dumps(outcomes, sort_keys=True)}")
print(f"records in the last hour (API, capped at 1000): {actions}")
print(f"RSS KiB at 10% / 25% / 50% / 75% / 100%: {at(0.1)} / {at(0.25)} / {at(0.5)} / {at(0.75)} / {at(1.0)}")
print(f"RSS KiB over the second half: min {min(half)} max {max(half)}")
print(f"open fds first / last: {first['fds']} / {last['fds']}")
print(f"channel peak {max(r['channel']['len'] for r in rows)}/{last['channel']['capacity']}, dropped {last['channel']['dropped']}")
print(f"history series {last['history']['series']['len']}/{last['history']['series']['capacity']}, points {last['history']['points']['len']}/{last['history']['points']['capacity']}")
print(f"store: size {last['store']['size_bytes'] / 1e6:.1f} MB, queue dropped {last['store']['queue']['dropped']}, lost records {last['store'].get('lost_records', 0)}, write errors {last['store']['write_errors']}")
print(f"panics {last.get('panics', 0)}, every bound held at every sample: {bounds_ok}")
grew = max(half) - min(half)
flat = grew <= max(8 * 1024, min(half) // 10)
print(f"RSS flat over the second half (within 10% or 8 MiB): {flat}")
ok = flat and bounds_ok and last.get("panics", 0) == 0 and rate >= 100 * normal
sys.exit(0 if ok else 1)
PY
