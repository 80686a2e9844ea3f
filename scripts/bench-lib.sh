#!/usr/bin/env bash
# Shared by the bench scripts (sourced): a work directory and the processes
# (and Docker containers) started for a run, all cleaned up on exit; a free
# loopback port; endpoints on the ports of a file; CPU and RSS of two processes measured side by side.

work=$(mktemp -d)
pids=()
names=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${names[@]}"; do docker rm -f "$n" >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# each_endpoint PORTS_FILE FORMAT
# Ten paths on each port of PORTS_FILE (one per line): prints FORMAT once per
# endpoint with its number (from 1), port and path number, as printf's three
# arguments.
each_endpoint() {
  local n=0 port path
  while read -r port || [ -n "$port" ]; do
    for path in $(seq 10); do
      n=$((n + 1))
      # shellcheck disable=SC2059 # the format is the caller's
      printf "$2" "$n" "$port" "$path"
    done
  done <"$1"
}

# measure_pair PID_A PID_B SECONDS [COMMAND...]
# Samples both processes once a second for SECONDS (running COMMAND first
# each second, if given) and prints one line:
#   WALL_S CPU_A CPU_B RSS_MEAN_A RSS_MEAN_B RSS_MAX_A RSS_MAX_B
# CPU is utime+stime over the window as % of one core; RSS in MiB.
measure_pair() {
  local a=$1 b=$2 window=$3
  shift 3
  ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
  local a0 b0 t0 a1 b1 t1 ar br asum=0 bsum=0 amax=0 bmax=0 n=0
  a0=$(ticks "$a"); b0=$(ticks "$b"); t0=$(date +%s.%N)
  for _ in $(seq "$window"); do
    if [ $# -gt 0 ]; then "$@"; fi
    ar=$(rss "$a"); br=$(rss "$b")
    asum=$((asum + ar)); bsum=$((bsum + br)); n=$((n + 1))
    [ "$ar" -gt "$amax" ] && amax=$ar
    [ "$br" -gt "$bmax" ] && bmax=$br
    sleep 1
  done
  a1=$(ticks "$a"); b1=$(ticks "$b"); t1=$(date +%s.%N)
  python3 - "$a0" "$a1" "$b0" "$b1" "$t0" "$t1" "$(getconf CLK_TCK)" "$asum" "$bsum" "$n" "$amax" "$bmax" <<'PY'
import sys
a0, a1, b0, b1, t0, t1, hz, asum, bsum, n, amax, bmax = map(float, sys.argv[1:])
wall = t1 - t0
cpu = lambda x0, x1: (x1 - x0) / hz / wall * 100
print(f"{wall:.1f} {cpu(a0, a1):.4f} {cpu(b0, b1):.4f} {asum / n / 1024:.2f} {bsum / n / 1024:.2f} {amax / 1024:.2f} {bmax / 1024:.2f}")
PY
}
