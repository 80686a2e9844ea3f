#!/usr/bin/env bash
# Time to heal an unhealthy container: aegis (Docker's event stream) side by
# side with a 5-second polling watcher configured like the common autoheal
# container (AUTOHEAL_INTERVAL=5, label autoheal=true, `docker restart -t 10`).
#
# Both are measured the same way, from Docker's own event stream:
#   unhealthy -> restart   from `health_status: unhealthy` to the `kill` that
#                          starts the restart (the restart call is just before);
#   fault -> healthy       from the fault (`rm /www/health`) to
#                          `health_status: healthy` after the restart.
# Usage: scripts/bench-heal.sh [TRIALS] (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-5}"

source scripts/deps.sh
ensure_test_dependencies >/dev/null
cargo build --release -q -p aegis

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

port=$(free_port)
cat >"$work/aegis.toml" <<TOML
[docker]
interval = "5s"
[heal]
cooldown = "1s"
rate_max = 100
[detect]
enabled = false
TOML
HOME="$work" ./target/release/aegis run --config "$work/aegis.toml" --listen "127.0.0.1:$port" \
  --state-dir "$work/state" --log-format json >"$work/aegis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

# The peer: a polling watcher as the autoheal container runs it.
(
  while sleep 5; do
    for id in $(docker ps -q --filter health=unhealthy --filter label=autoheal=true); do
      docker restart -t 10 "$id" >/dev/null
    done
  done
) &
pids+=($!)

now_ns() { date +%s%N; }

trial() { # $1 = name, $2 = label
  local name=$1 label=$2
  names+=("$name")
  docker run -d --name "$name" --network none --init --label "$label" \
    --health-cmd 'wget -q -O /dev/null http://127.0.0.1:8080/health' --health-interval 1s --health-retries 2 \
    aegis-test/busybox:latest sh -c 'echo ok > /www/health && exec httpd -f -p 127.0.0.1:8080 -h /www' >/dev/null
  for _ in $(seq 100); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] && break
    sleep 0.1
  done
  # A random phase against the watcher's 5 s loop, as a fault would have.
  sleep "$(python3 -c 'import random; print(round(random.uniform(0, 5), 2))')"
  local since
  since=$(date +%s.%N)
  local fault
  fault=$(now_ns)
  docker exec "$name" rm /www/health
  # Wait for the cure: healthy again after a restart.
  timeout 60 docker events --since "$since" --filter "container=$name" \
    --format '{{.TimeNano}} {{.Action}}' >"$work/$name.events" &
  local ev=$!
  for _ in $(seq 600); do
    grep -q 'kill' "$work/$name.events" 2>/dev/null && grep -q 'health_status: healthy' "$work/$name.events" && break
    sleep 0.1
  done
  kill "$ev" 2>/dev/null || true
  wait "$ev" 2>/dev/null || true
  python3 - "$work/$name.events" "$fault" <<'PY'
import sys
events = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines() if " " in l]
fault = int(sys.argv[2])
unhealthy = next(int(t) for t, a in events if a.strip() == "health_status: unhealthy")
kill = next(int(t) for t, a in events if a.strip() == "kill" and int(t) > unhealthy)
healthy = next(int(t) for t, a in events if a.strip() == "health_status: healthy" and int(t) > kill)
print(f"{(kill - unhealthy) / 1e6:.1f} {(healthy - fault) / 1e6:.1f}")
PY
  docker rm -f "$name" >/dev/null
}

echo "trial | aegis unhealthy->restart ms | aegis fault->healthy ms | watcher unhealthy->restart ms | watcher fault->healthy ms"
ours=()
theirs=()
for i in $(seq "$trials"); do
  a=$(trial "bench-aegis-$i-$$" aegis.autoheal=true)
  w=$(trial "bench-watcher-$i-$$" autoheal=true)
  echo "$i | ${a% *} | ${a#* } | ${w% *} | ${w#* }"
  ours+=("$a")
  theirs+=("$w")
done
python3 - "${ours[@]}" -- "${theirs[@]}" <<'PY'
import statistics, sys
args = sys.argv[1:]
split = args.index("--")
ours = [tuple(map(float, a.split())) for a in args[:split]]
theirs = [tuple(map(float, a.split())) for a in args[split + 1:]]
med = lambda xs: statistics.median(xs)
a1, a2 = med([o[0] for o in ours]), med([o[1] for o in ours])
w1, w2 = med([t[0] for t in theirs]), med([t[1] for t in theirs])
print()
print("| median over trials | aegis (event stream) | 5 s polling watcher | ratio watcher / aegis |")
print("|---|---|---|---|")
print(f"| unhealthy event -> restart begins | {a1:.0f} ms | {w1:.0f} ms | {w1 / a1:.0f}x |")
print(f"| fault injected -> healthy again | {a2:.0f} ms | {w2:.0f} ms | {w2 / a2:.1f}x |")
PY
echo
echo "aegis's own figure, Docker's event time to its restart call (from /api/v1/actions):"
curl -s "127.0.0.1:$port/api/v1/actions?limit=1000" | python3 -c '
import json, sys, statistics
v = [r["detail"]["event_to_call_ms"] for r in json.load(sys.stdin) if r["outcome"] == "succeeded" and "event_to_call_ms" in r["detail"]]
print(f"  {len(v)} restarts: median {statistics.median(v):.1f} ms, max {max(v):.1f} ms")'
