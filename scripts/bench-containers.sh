#!/usr/bin/env bash
# Unhealthy -> decision and unhealthy -> restart with 1, 30 and 100
# containers turning unhealthy at once: aegis (Docker's event stream) side by
# side with the 5-second polling watcher of scripts/bench-heal.sh (the common
# autoheal container: AUTOHEAL_INTERVAL=5, `docker restart -t 10`, one
# container after another).
#
# For each count and each healer, COUNT containers are started and made
# healthy, then every one is made unhealthy at the same moment
# (`rm /www/health` in all at once). Measured from Docker's own event stream:
#   unhealthy -> restart   `health_status: unhealthy` to the `kill` that
#                          starts the container's restart;
# and for aegis also its own record:
#   unhealthy -> decision  Docker's event time to the `decided` record.
# Each healer runs alone, on containers labelled for it only.
#
# Usage: scripts/bench-containers.sh [COUNT...]   (default: 1 30 100)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 30 100)

source scripts/deps.sh
ensure_test_dependencies >/dev/null
cargo build --release -q -p aegis

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

start_aegis() {
  port=$(free_port)
  rm -rf "$work/state"
  cat >"$work/aegis.toml" <<TOML
[docker]
interval = "5s"
[heal]
cooldown = "1s"
rate_max = 100
budget_max = 10000
[detect]
enabled = false
TOML
  HOME="$work" ./target/release/aegis run --config "$work/aegis.toml" --listen "127.0.0.1:$port" \
    --state-dir "$work/state" --log-format json >"$work/aegis.log" 2>&1 &
  healer=$!
  pids+=("$healer")
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "aegis did not start:"; tail "$work/aegis.log"; exit 1
}

start_watcher() {
  (
    while sleep 5; do
      for id in $(docker ps -q --filter health=unhealthy --filter label=autoheal=true); do
        docker restart -t 10 "$id" >/dev/null
      done
    done
  ) &
  healer=$!
  pids+=("$healer")
}

stop_healer() {
  pkill -P "$healer" 2>/dev/null || true
  kill "$healer" 2>/dev/null || true
  wait "$healer" 2>/dev/null || true
}

# run COUNT LABEL PREFIX: prints "unhealthy->restart" latencies (ms), one per
# container, to $work/PREFIX.restart and the events to $work/PREFIX.events.
run() {
  local count=$1 label=$2 prefix=$3
  local batch=()
  for i in $(seq "$count"); do batch+=("$prefix-$i"); done
  names+=("${batch[@]}")
  printf '%s\n' "${batch[@]}" | xargs -P 8 -I{} docker run -d --name {} --network none --init \
    --label "$label" --health-cmd 'wget -q -O /dev/null http://127.0.0.1:8080/health' \
    --health-interval 1s --health-retries 2 aegis-test/busybox:latest \
    sh -c 'echo ok > /www/health && exec httpd -f -p 127.0.0.1:8080 -h /www' >/dev/null
  for _ in $(seq 600); do
    [ "$(docker ps -q --filter "name=^$prefix-" --filter health=healthy | wc -l)" -eq "$count" ] && break
    sleep 0.2
  done
  local since
  since=$(date +%s.%N)
  timeout 300 docker events --since "$since" --filter "label=$label" \
    --format '{{.Actor.Attributes.name}} {{.TimeNano}} {{.Action}}' >"$work/$prefix.events" &
  local ev=$!
  sleep 0.5 # the event reader connected before the fault
  printf '%s\n' "${batch[@]}" | xargs -P 16 -I{} docker exec {} rm /www/health
  # Until every container has been restarted (a kill after its unhealthy event).
  for _ in $(seq 1800); do
    python3 - "$work/$prefix.events" "$count" <<'PY' && break
import sys
seen, killed = set(), set()
for line in open(sys.argv[1]):
    f = line.split(" ", 2)
    if len(f) < 3:
        continue
    if f[2].strip() == "health_status: unhealthy":
        seen.add(f[0])
    elif f[2].strip() == "kill" and f[0] in seen:
        killed.add(f[0])
sys.exit(0 if len(killed) >= int(sys.argv[2]) else 1)
PY
    sleep 0.2
  done
  kill "$ev" 2>/dev/null || true
  wait "$ev" 2>/dev/null || true
  python3 - "$work/$prefix.events" >"$work/$prefix.restart" <<'PY'
import sys
first_unhealthy, first_kill = {}, {}
for line in open(sys.argv[1]):
    f = line.split(" ", 2)
    if len(f) < 3:
        continue
    name, t, action = f[0], int(f[1]), f[2].strip()
    if action == "health_status: unhealthy":
        first_unhealthy.setdefault(name, t)
    elif action == "kill" and name in first_unhealthy:
        first_kill.setdefault(name, t)
for name, t in first_unhealthy.items():
    if name in first_kill:
        print(f"{(first_kill[name] - t) / 1e6:.1f}")
    else:
        print("nan")
PY
  printf '%s\n' "${batch[@]}" | xargs -P 8 -n 20 docker rm -f >/dev/null
}

summary() { # file -> "median p95 max restarted/total"
  python3 - "$1" <<'PY'
import math, sys
v = [float(x) for x in open(sys.argv[1]).read().split()]
ok = sorted(x for x in v if not math.isnan(x))
if not ok:
    print("- - - 0/%d" % len(v)); sys.exit()
q = lambda p: ok[min(len(ok) - 1, int(round(p * (len(ok) - 1))))]
print(f"{q(0.5):.0f} {q(0.95):.0f} {ok[-1]:.0f} {len(ok)}/{len(v)}")
PY
}

echo "| containers | healer | unhealthy -> restart median / p95 / max (ms) | restarted | unhealthy -> decision median / max (ms) |"
echo "|---|---|---|---|---|"
for n in "${counts[@]}"; do
  start_aegis
  run "$n" aegis.autoheal=true "bench-a$n-$$"
  decision=$(curl -s "127.0.0.1:$port/api/v1/actions?limit=1000&since=1h" | python3 -c '
import json, statistics, sys
v = [r["detail"]["event_to_decision_ms"] for r in json.load(sys.stdin)
     if r["outcome"] == "decided" and "event_to_decision_ms" in r.get("detail", {})]
print(f"{statistics.median(v):.1f} / {max(v):.1f}" if v else "-")')
  stop_healer
  read -r med p95 max done <<<"$(summary "$work/bench-a$n-$$.restart")"
  echo "| $n | aegis | $med / $p95 / $max | $done | $decision |"
  start_watcher
  run "$n" autoheal=true "bench-w$n-$$"
  stop_healer
  read -r med p95 max done <<<"$(summary "$work/bench-w$n-$$.restart")"
  echo "| $n | 5 s polling watcher | $med / $p95 / $max | $done | - |"
done
