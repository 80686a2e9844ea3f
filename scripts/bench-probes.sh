#!/usr/bin/env bash
# The agent's cost with 200 HTTP endpoints and 50 watched processes (local
# test servers and processes), at a 10 s probe interval. CPU is
# utime+stime over the window as % of one core; RSS sampled every second.
# The same agent with no endpoints or processes runs beside it as the
# baseline. Usage: scripts/bench-probes.sh [SECONDS] (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
window="${1:-60}"
cargo build --release -q -p aegis

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# 20 servers, 10 paths each: 200 endpoints.
python3 - "$work/ports" <<'PY' &
import asyncio, sys
async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
    except Exception:
        pass
    writer.close()
async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(20)]
    with open(sys.argv[1], "w") as f:
        f.write("\n".join(str(s.sockets[0].getsockname()[1]) for s in servers))
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/ports" ] && break; sleep 0.1; done

# 50 processes to watch.
for i in $(seq 50); do
  sleep "$((100000 + i)).$$" &
  pids+=($!)
done

{
  echo '[docker]'
  echo 'enabled = false'
  echo '[probe]'
  echo 'interval = "10s"'
  each_endpoint "$work/ports" '[[probes]]\nname = "ep%s"\nurl = "http://127.0.0.1:%s/p%s"\n'
  for i in $(seq 50); do
    printf '[[processes]]\nname = "proc%s"\ncmdline = "sleep %s.%s"\n' "$i" "$((100000 + i))" "$$"
  done
} >"$work/full.toml"
printf '[docker]\nenabled = false\n' >"$work/base.toml"

start() { # $1 = config, $2 = state dir
  local port; port=$(free_port)
  HOME="$work" ./target/release/aegis run --config "$1" --listen "127.0.0.1:$port" --interval 10s \
    --state-dir "$2" --log-format json >"$2.log" 2>&1 &
  echo "$! $port"
}
read -r fpid fport < <(start "$work/full.toml" "$work/full")
pids+=("$fpid")
read -r bpid bport < <(start "$work/base.toml" "$work/base")
pids+=("$bpid")
sleep 15
curl -s "127.0.0.1:$fport/api/v1/status" >"$work/status.json"
python3 - "$work/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
checks = s["checks"]
passing = sum(1 for c in checks if c["state"] == "passing")
sources = ", ".join(x["name"] + "=" + x["state"] for x in s["sources"])
print(f"checks: {len(checks)}, passing: {passing}; sources: {sources}")
PY

read -r wall fc bc fs bs fm bm < <(measure_pair "$fpid" "$bpid" "$window")
python3 - "$wall" "$fc" "$bc" "$fs" "$bs" "$fm" "$bm" <<'PY'
import sys
wall, fc, bc, fs, bs, fm, bm = map(float, sys.argv[1:])
print(f"window {wall:.0f} s, collect and probe interval 10 s")
print("| agent | CPU % of one core | RSS mean MiB | RSS max MiB |")
print("|---|---|---|---|")
print(f"| 200 endpoints + 50 processes | {fc:.2f} | {fs:.1f} | {fm:.1f} |")
print(f"| host only (baseline) | {bc:.2f} | {bs:.1f} | {bm:.1f} |")
PY
