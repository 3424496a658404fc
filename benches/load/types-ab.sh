#!/usr/bin/env bash
# Side-by-side throughput of the workloads issues #4 and #5 set targets for:
# XADD, XREADGROUP, PFADD, PFCOUNT, EVALSHA of a small script, and PUBLISH
# to 1 and to 100 subscribers. Cinnabar (A) and redis-server (B) are started
# here and measured in alternation (A B, then B A, ...) with redis-benchmark,
# 50 clients, no pipelining; prints the median ops/s of each and A/B.
#
#   benches/load/types-ab.sh [rounds] [requests] [workload-regex]
#
# Ports: PA and PB in the environment (default 7621, 7622); extra flags for
# Cinnabar in CINNABAR_ARGS (e.g. CINNABAR_ARGS="--worker-threads 1").
# Needs target/release/cinnabar (cargo build --release), redis-server,
# redis-benchmark and python3 on PATH. Subscribers are drained by one
# python process reading large chunks (cheap per byte), so PUBLISH measures
# the server's fan-out, not the subscribers.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=${2:-100000}
ONLY=${3:-.}
PA=${PA:-7621} PB=${PB:-7622}
# shellcheck disable=SC2086 # CINNABAR_ARGS: extra flags, word-split on purpose
./target/release/cinnabar --port $PA --bind 127.0.0.1 --save "" ${CINNABAR_ARGS:-} >/dev/null 2>&1 & A=$!
redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 & B=$!
SUBS=()
cleanup() {
  kill $A $B 2>/dev/null || true
  for s in "${SUBS[@]}"; do kill "$s" 2>/dev/null || true; done
}
trap cleanup EXIT
sleep 0.5

# Loads a stream of $2 entries and a consumer group on port $1.
load_stream() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
n = int(sys.argv[2])
def cmd(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
def drain(k):
    buf = b""
    while buf.count(b"\r\n") < k:
        buf += s.recv(1 << 20)
s.sendall(cmd("DEL", "bench:rg")); drain(1)
done = 0
while done < n:
    k = min(10000, n - done)
    s.sendall(b"".join(cmd("XADD", "bench:rg", "*", "field", "value-%d" % (done + i)) for i in range(k)))
    drain(2 * k)  # each reply is a bulk string: two CRLFs
    done += k
s.sendall(cmd("XGROUP", "CREATE", "bench:rg", "g", "0")); drain(1)
PY
}

# Starts a drainer holding $2 subscriptions to channel bench:ch on port $1.
subscribe() {
  python3 - "$1" "$2" <<'PY' &
import selectors, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$8\r\nbench:ch\r\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        try:
            if not key.fileobj.recv(1 << 20):
                sel.unregister(key.fileobj)
        except BlockingIOError:
            pass
PY
  SUBS+=($!)
}

run() { # port, redis-benchmark args...
  local port=$1; shift
  redis-benchmark -p "$port" -n "$N" -c 50 -q "$@" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }

# measure <label> <setup-function or -> <redis-benchmark args...>
measure() {
  local label=$1 setup=$2; shift 2
  [[ $label =~ $ONLY ]] || return 0
  local ra=() rb=() a b
  for r in $(seq "$ROUNDS"); do
    if [[ $setup != - ]]; then $setup $PA; $setup $PB; fi
    if (( r % 2 )); then a=$(run $PA "$@"); b=$(run $PB "$@")
    else b=$(run $PB "$@"); a=$(run $PA "$@"); fi
    ra+=("$a"); rb+=("$b")
  done
  local ma mb
  ma=$(median "${ra[@]}"); mb=$(median "${rb[@]}")
  printf '%-34s cinnabar %10s  redis %10s  A/B %.3f   (A: %s | B: %s)\n' "$label" "$ma" "$mb" \
    "$(echo "$ma / $mb" | bc -l)" "${ra[*]}" "${rb[*]}"
}

stream_setup() { load_stream "$1" "$N"; }
hll_setup() {
  redis-cli -p "$1" del bench:hll >/dev/null
  redis-benchmark -p "$1" -n 200000 -c 50 -P 32 -r 100000000 -q PFADD bench:hll __rand_int__ >/dev/null 2>&1
}

echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)  rounds=$ROUNDS requests=$N"
measure "XADD *"                 -  XADD bench:s '*' field value
measure "XREADGROUP COUNT 1 >"   stream_setup  XREADGROUP GROUP g c1 COUNT 1 STREAMS bench:rg '>'
measure "PFADD random element"   -  -r 100000000 PFADD bench:hll __rand_int__
measure "PFCOUNT 1 key (dense)"  hll_setup  PFCOUNT bench:hll
SHA_A=$(redis-cli -p $PA script load "return redis.call('get', KEYS[1])")
redis-cli -p $PB script load "return redis.call('get', KEYS[1])" >/dev/null
for p in $PA $PB; do redis-cli -p $p set bench:key hello >/dev/null; done
measure "EVALSHA get(KEYS[1])"   -  EVALSHA "$SHA_A" 1 bench:key
subscribe $PA 1; subscribe $PB 1; sleep 0.5
measure "PUBLISH, 1 subscriber"  -  PUBLISH bench:ch hello-subscriber
for s in "${SUBS[@]}"; do kill "$s" 2>/dev/null || true; done; SUBS=()
subscribe $PA 100; subscribe $PB 100; sleep 1
measure "PUBLISH, 100 subscribers" - PUBLISH bench:ch hello-subscriber
echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
