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

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
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

# Warm-up: let both reach their steady state before measuring.
scrape() { curl -s "127.0.0.1:$aport/metrics" >/dev/null; curl -s "127.0.0.1:$nport/metrics" >/dev/null; }
for _ in $(seq 5); do scrape; sleep 1; done

read -r wall acpu ncpu arss nrss amax nmax < <(measure_pair "$apid" "$npid" "$window" scrape)
series=$(curl -s "127.0.0.1:$aport/metrics" | grep -c '^aegis_host_' || true)
python3 - "$wall" "$acpu" "$ncpu" "$arss" "$nrss" "$amax" "$nmax" "$series" <<'PY'
import sys
wall, acpu, ncpu, arss, nrss, amax, nmax, series = map(float, sys.argv[1:])
print(f"window {wall:.0f} s, 1 s interval, each scraped once a second; aegis exports {int(series)} host series")
print(f"| process | CPU % of one core | RSS mean MiB | RSS max MiB |")
print(f"|---|---|---|---|")
print(f"| aegis | {acpu:.2f} | {arss:.1f} | {amax:.1f} |")
print(f"| prometheus-node-exporter | {ncpu:.2f} | {nrss:.1f} | {nmax:.1f} |")
print(f"| ratio aegis / node-exporter | {acpu/ncpu if ncpu else float('nan'):.2f} | {arss/nrss:.2f} | {amax/nmax:.2f} |")
PY
