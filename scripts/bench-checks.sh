#!/usr/bin/env bash
# Checks side by side with Debian's monit, configured the same way, in one run.
#
# 1. Fault -> action. Ten endpoints (one local HTTP server each), watched by
#    both every second with three failures in a row before acting; the
#    action touches a file (aegis: a `command` rung; monit: `exec`). Each
#    trial kills one server at a random phase of the second and times, from
#    the kill, when each file appears. One endpoint per trial: the agent's
#    crash-loop back-off spaces heals of one target 10 s and more apart, and
#    a benchmark of the first heal should not be measuring that.
# 2. Cost. 200 HTTP checks (20 servers x 10 paths) at a 10 s interval:
#    CPU (utime+stime, % of one core) and RSS of both, sampled each second;
#    once as shipped (aegis also reads the host every 5 s), once with both
#    also reading the host every 10 s (Monit: `check system`).
#
# Usage: scripts/bench-checks.sh [TRIALS] [SECONDS] (defaults 10 and 60).
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-10}"
window="${2:-60}"

source scripts/deps.sh
apt_install monit python3
cargo build --release -q -p aegis

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# A small HTTP server on a given port; prints its PID.
serve() { # $1 = port
  python3 - "$1" <<'PY' >/dev/null 2>&1 &
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
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), reuse_address=True)
    await server.serve_forever()
asyncio.run(main())
PY
  echo $!
}
up() { curl -sf -o /dev/null --max-time 1 "127.0.0.1:$1/health"; }

declare -a ports spids
for i in $(seq "$trials"); do
  ports[$i]=$(free_port)
  spids[$i]=$(serve "${ports[$i]}")
  pids+=("${spids[$i]}")
done
for i in $(seq "$trials"); do
  for _ in $(seq 50); do up "${ports[$i]}" && break; sleep 0.1; done
done

# The agent.
{
  printf '[docker]\nenabled = false\n[detect]\nenabled = false\n[heal]\ncooldown = "1s"\nrate_max = 1000\nbudget_max = 1000\n'
  for i in $(seq "$trials"); do
    printf '[[checks]]\nname = "web%s"\nkind = "http"\nurl = "http://127.0.0.1:%s/health"\ninterval = "1s"\ntimeout = "500ms"\nfailure_threshold = 3\n' "$i" "${ports[$i]}"
    printf '[[heal.rules]]\nname = "web%s"\non = "check_failed"\ncheck = "web%s"\nactions = [{ kind = "command", argv = ["touch", "%s/aegis-%s"] }]\n' "$i" "$i" "$work" "$i"
  done
} >"$work/aegis.toml"
aport=$(free_port)
HOME="$work" ./target/release/aegis run --config "$work/aegis.toml" --listen "127.0.0.1:$aport" \
  --state-dir "$work/state" --log-format json >"$work/aegis.log" 2>&1 &
apid=$!
pids+=("$apid")

# Monit, the same way.
{
  printf 'set daemon 1\nset logfile %s/monit.log\nset pidfile %s/monit.pid\nset idfile %s/monit.id\nset statefile %s/monit.state\n' "$work" "$work" "$work" "$work"
  for i in $(seq "$trials"); do
    printf 'check host web%s with address 127.0.0.1\n  if failed port %s protocol http request "/health" timeout 1 seconds for 3 cycles then exec "/usr/bin/touch %s/monit-%s"\n' "$i" "${ports[$i]}" "$work" "$i"
  done
} >"$work/monitrc"
chmod 600 "$work/monitrc"
monit -I -c "$work/monitrc" >/dev/null 2>&1 &
mpid=$!
pids+=("$mpid")

# Both see every endpoint pass first.
for _ in $(seq 100); do
  n=$(curl -s "127.0.0.1:$aport/api/v1/checks" | python3 -c 'import json,sys; print(sum(c["state"]=="passing" for c in json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "$n" -ge "$trials" ] && break
  sleep 0.2
done
sleep 3 # monit's first cycles (it has no API to ask)

: >"$work/times"
for i in $(seq "$trials"); do
  # A random phase within the second.
  sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
  t0=$(date +%s.%N)
  kill "${spids[$i]}"
  ta=""; tm=""
  for _ in $(seq 300); do
    [ -z "$ta" ] && [ -e "$work/aegis-$i" ] && ta=$(date +%s.%N)
    [ -z "$tm" ] && [ -e "$work/monit-$i" ] && tm=$(date +%s.%N)
    [ -n "$ta" ] && [ -n "$tm" ] && break
    sleep 0.01
  done
  echo "$t0 ${ta:-nan} ${tm:-nan}" >>"$work/times"
done
python3 - "$work/times" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
a = [r[1] - r[0] for r in rows]
m = [r[2] - r[0] for r in rows]
print(f"fault -> action, {len(rows)} trials, checks every 1 s, 3 failures in a row:")
print("| | median s | mean s | worst s | best s |")
print("|---|---|---|---|---|")
for name, xs in (("aegis", a), ("monit", m)):
    print(f"| {name} | {statistics.median(xs):.2f} | {statistics.mean(xs):.2f} | {max(xs):.2f} | {min(xs):.2f} |")
first = sum(x < y for x, y in zip(a, m))
print(f"aegis acted first in {first} of {len(rows)} trials")
PY
kill "$apid" "$mpid" 2>/dev/null || true
wait "$apid" "$mpid" 2>/dev/null || true

# 2. 200 HTTP checks at 10 s.
python3 - "$work/ports200" <<'PY' &
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
for _ in $(seq 50); do [ -s "$work/ports200" ] && break; sleep 0.1; done
# $1 = label, $2 = extra aegis settings, $3 = extra monit lines.
cost() {
  local label=$1 aegis_extra=$2 monit_extra=$3
  {
    printf '[docker]\nenabled = false\n[detect]\nenabled = false\n%b' "$aegis_extra"
    each_endpoint "$work/ports200" \
      '[[checks]]\nname = "ep%s"\nkind = "http"\nurl = "http://127.0.0.1:%s/p%s"\ninterval = "10s"\n'
  } >"$work/aegis200.toml"
  {
    printf 'set daemon 10\nset logfile %s/monit200.log\nset pidfile %s/monit200.pid\nset idfile %s/monit200.id\nset statefile %s/monit200.state\n%b' "$work" "$work" "$work" "$work" "$monit_extra"
    each_endpoint "$work/ports200" \
      'check host ep%s with address 127.0.0.1\n  if failed port %s protocol http request "/p%s" for 3 cycles then alert\n'
  } >"$work/monitrc200"
  chmod 600 "$work/monitrc200"
  rm -rf "$work/state200"
  aport=$(free_port)
  HOME="$work" ./target/release/aegis run --config "$work/aegis200.toml" --listen "127.0.0.1:$aport" \
    --state-dir "$work/state200" --log-format json >"$work/aegis200.log" 2>&1 &
  apid=$!
  pids+=("$apid")
  monit -I -c "$work/monitrc200" >/dev/null 2>&1 &
  mpid=$!
  pids+=("$mpid")
  sleep 15
  curl -s "127.0.0.1:$aport/api/v1/checks" >"$work/checks200.json"
  python3 - "$work/checks200.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"aegis: {len(c)} checks, {sum(x['state'] == 'passing' for x in c)} passing")
PY
  read -r wall ac mc as ms am mm < <(measure_pair "$apid" "$mpid" "$window")
  python3 - "$label" "$wall" "$ac" "$mc" "$as" "$ms" "$am" "$mm" <<'PY'
import sys
label = sys.argv[1]
wall, ac, mc, as_, ms, am, mm = map(float, sys.argv[2:])
print(f"200 HTTP checks every 10 s, {label}, window {wall:.0f} s:")
print("| | CPU % of one core | RSS mean MiB | RSS max MiB |")
print("|---|---|---|---|")
print(f"| aegis | {ac:.3f} | {as_:.1f} | {am:.1f} |")
print(f"| monit | {mc:.3f} | {ms:.1f} | {mm:.1f} |")
PY
  kill "$apid" "$mpid" 2>/dev/null || true
  wait "$apid" "$mpid" 2>/dev/null || true
}
# As shipped: aegis also reads the host every 5 s (its default), Monit only
# checks the endpoints.
cost "as shipped" "" ""
# Like for like: both also read the host every 10 s.
cost "both reading the host every 10 s" '[collect]\ninterval = "10s"\n' 'check system localhost\n'
