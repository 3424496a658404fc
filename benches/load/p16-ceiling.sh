#!/usr/bin/env bash
# Who limits a pipelined redis-benchmark run: the server or the client?
# Starts Cinnabar (A) and redis-server (B) side by side and runs
# `redis-benchmark -c 50 -P 16 -t get|set` against each in alternation
# (A then B, B then A, ...). For every run it prints ops/s and the CPU each
# side used as a share of the run's wall time: the client's from
# /usr/bin/time-like accounting (utime+stime of the child), the server's
# from /proc. A client at ~100% of one core while the server has CPU to
# spare means the figure is the client's ceiling, not the server's.
#
#   benches/load/p16-ceiling.sh [rounds] [requests]
#
# PIN=1 puts both servers on CPU 1 and the client on CPU 0 (a core each).
# CINNABAR_ARGS adds flags for Cinnabar: with its default polling
# (`busy-poll-us`) a busy Cinnabar keeps its core whatever the load, so its
# CPU share says more with CINNABAR_ARGS="--busy-poll-us 0".
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=${2:-2000000}
PA=${PA:-7651} PB=${PB:-7652}
A= B=
cleanup() {
  [ -n "$A" ] && kill "$A" 2>/dev/null
  [ -n "$B" ] && kill "$B" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT
SP=() CP=()
if [ "${PIN:-0}" = 1 ]; then SP=(taskset -c 1) CP=(taskset -c 0); fi
# shellcheck disable=SC2086 # CINNABAR_ARGS: extra flags, word-split on purpose
"${SP[@]}" ./target/release/cinnabar --port $PA --bind 127.0.0.1 --save "" ${CINNABAR_ARGS:-} >/dev/null 2>&1 &
A=$!
"${SP[@]}" redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
B=$!
for p in $PA $PB; do
  for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.05; done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# label port pid test
run() {
  local s0 s1 out
  s0=$(ticks "$3")
  out=$(python3 - "$2" "$4" "$N" "${CP[@]}" <<'EOF'
import os, resource, subprocess, sys, time
port, test, n, pin = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
t0 = time.time()
p = subprocess.run(pin + ["redis-benchmark", "-p", port, "-c", "50", "-n", n, "-P", "16",
                    "-t", test, "--csv"], capture_output=True, text=True)
wall = time.time() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rps = float([l for l in p.stdout.splitlines() if l.startswith('"' + test.upper())][0].split(",")[1].strip('"'))
print(f"{rps:.0f} {wall:.3f} {(ru.ru_utime + ru.ru_stime) / wall * 100:.0f}")
EOF
)
  s1=$(ticks "$3")
  read -r rps wall cli <<<"$out"
  printf '%-9s %-4s %10s ops/s  client CPU %3s%% of wall  server CPU %3.0f%%\n' \
    "$1" "$4" "$rps" "$cli" "$(echo "($s1 - $s0) / $TCK / $wall * 100" | bc -l)"
}
for r in $(seq "$ROUNDS"); do
  for t in get set; do
    if [ $((r % 2)) = 1 ]; then
      run cinnabar $PA $A $t
      run redis $PB $B $t
    else
      run redis $PB $B $t
      run cinnabar $PA $A $t
    fi
  done
done
