#!/usr/bin/env bash
# Side-by-side ZRANGE (100 members), ZRANK, ZSCORE and ZADD (a new score
# for an existing member) on a 1M-member sorted set:
# Cinnabar vs redis-server, started here, loaded identically, measured in
# alternation (A B, B A, ...) with redis-benchmark; prints medians and A/B.
#
#   benches/load/zset-ab.sh [rounds] [requests]
#
# Needs target/release/cinnabar (cargo build --release; CINNABAR_BIN names
# another build), redis-server and redis-benchmark on PATH.
#
# redis-benchmark writes __rand_int__ as 12 digits (000000012345), so the
# members are named that way: every ZRANK/ZSCORE finds its member and
# every ZADD moves an existing one.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=${2:-200000}
PA=7611 PB=7612
"${CINNABAR_BIN:-./target/release/cinnabar}" --port $PA --bind 127.0.0.1 --save "" >/dev/null 2>&1 & A=$!
redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 & B=$!
trap 'kill $A $B 2>/dev/null' EXIT
sleep 0.5
for p in $PA $PB; do
  # 1M distinct members: member:<i as 12 digits> with score i, loaded
  # through a pipe.
  python3 - "$p" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*a):
    out = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)
batch = []
for i in range(1_000_000):
    batch.append(cmd("ZADD", "bigz", i, "member:%012d" % i))
    if len(batch) == 10000:
        s.sendall(b"".join(batch)); batch = []
        need = 10000
        buf = b""
        while buf.count(b"\r\n") < need:
            buf += s.recv(1 << 20)
s.sendall(b"".join(batch) + cmd("ZCARD", "bigz"))
PY
done
run() { # port, command...
  local port=$1; shift
  redis-benchmark -p "$port" -n "$N" -c 50 -q "$@" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}
# The ZADD runs last: it gives existing members new random scores, so the
# set keeps its 1M members but every call moves one within the order.
for w in "ZRANGE bigz 0 99" "ZRANK bigz member:__rand_int__" "ZSCORE bigz member:__rand_int__" \
  "ZADD bigz __rand_int__ member:__rand_int__"; do
  ra=(); rb=()
  for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then a=$(run $PA -r 1000000 $w); b=$(run $PB -r 1000000 $w)
    else b=$(run $PB -r 1000000 $w); a=$(run $PA -r 1000000 $w); fi
    ra+=("$a"); rb+=("$b")
  done
  ma=$(printf '%s\n' "${ra[@]}" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  mb=$(printf '%s\n' "${rb[@]}" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  printf '%-36s cinnabar %10s  redis %10s  A/B %.3f\n' "$w" "$ma" "$mb" "$(echo "$ma / $mb" | bc -l)"
done
# Every ZADD moved an existing member: both sets still hold 1M.
for p in $PA $PB; do echo "ZCARD bigz on port $p after the runs: $(redis-cli -p $p ZCARD bigz)"; done
