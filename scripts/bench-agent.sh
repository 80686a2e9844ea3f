#!/usr/bin/env bash
# Steady-state cost of the agent, side by side with Debian's
# prometheus-node-exporter in the same run.
#
# Both run at once on loopback for the same window; each is scraped once a
# second (aegis also collects the host every second on its own). CPU is
# utime+stime from /proc/PID/stat over the window, as % of one core; RSS is
# sampled every second. Usage: scripts/bench-agent.sh [SECONDS] (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

window="${1:-60}"
if ! command -v prometheus-node-exporter >/dev/null; then
  echo "installing prometheus-node-exporter (the peer)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null
fi
cargo build --release -q -p aegis

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
aport=$(free_port); nport=$(free_port)

HOME="$work" ./target/release/aegis run --interval 1s --listen "127.0.0.1:$aport" \
  --state-dir "$work/state" --log-format json >"$work/aegis.log" 2>&1 &
apid=$!; pids+=("$apid")
prometheus-node-exporter --web.listen-address="127.0.0.1:$nport" >"$work/ne.log" 2>&1 &
npid=$!; pids+=("$npid")

for _ in $(seq 50); do
  curl -sf "127.0.0.1:$aport/healthz" >/dev/null && curl -sf "127.0.0.1:$nport/metrics" >/dev/null && break
  sleep 0.2
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# Warm-up: let both reach their steady state before measuring.
for _ in $(seq 5); do
  curl -s "127.0.0.1:$aport/metrics" >/dev/null; curl -s "127.0.0.1:$nport/metrics" >/dev/null; sleep 1
done

a0=$(ticks "$apid"); n0=$(ticks "$npid"); t0=$(date +%s.%N)
asum=0; nsum=0; amax=0; nmax=0; n=0
for _ in $(seq "$window"); do
  curl -s "127.0.0.1:$aport/metrics" >/dev/null
  curl -s "127.0.0.1:$nport/metrics" >/dev/null
  ar=$(rss "$apid"); nr=$(rss "$npid")
  asum=$((asum + ar)); nsum=$((nsum + nr)); n=$((n + 1))
  [ "$ar" -gt "$amax" ] && amax=$ar
  [ "$nr" -gt "$nmax" ] && nmax=$nr
  sleep 1
done
a1=$(ticks "$apid"); n1=$(ticks "$npid"); t1=$(date +%s.%N)

series=$(curl -s "127.0.0.1:$aport/metrics" | grep -c '^aegis_host_' || true)
python3 - "$a0" "$a1" "$n0" "$n1" "$t0" "$t1" "$hz" "$asum" "$nsum" "$n" "$amax" "$nmax" "$series" <<'PY'
import sys
a0, a1, n0, n1, t0, t1, hz, asum, nsum, n, amax, nmax, series = map(float, sys.argv[1:])
wall = t1 - t0
acpu = (a1 - a0) / hz / wall * 100
ncpu = (n1 - n0) / hz / wall * 100
arss, nrss = asum / n / 1024, nsum / n / 1024
print(f"window {wall:.0f} s, 1 s interval, each scraped once a second; aegis exports {int(series)} host series")
print(f"| process | CPU % of one core | RSS mean MiB | RSS max MiB |")
print(f"|---|---|---|---|")
print(f"| aegis | {acpu:.2f} | {arss:.1f} | {amax/1024:.1f} |")
print(f"| prometheus-node-exporter | {ncpu:.2f} | {nrss:.1f} | {nmax/1024:.1f} |")
print(f"| ratio aegis / node-exporter | {acpu/ncpu if ncpu else float('nan'):.2f} | {arss/nrss:.2f} | {amax/nmax:.2f} |")
PY
