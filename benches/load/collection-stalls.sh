#!/usr/bin/env bash
# Server-side stalls on single large collections, Cinnabar (A) beside
# redis-server (B), each started here on its own port:
#   1. growth: one hash, one set and one sorted set each grow to about
#      ELEMENTS elements from random HSET / SADD / ZADD (their tables
#      resize many times while the writes run), one list and one stream
#      to ELEMENTS from RPUSH / XADD;
#   2. snapshot: five back-to-back BGSAVEs, each under 30,000 random ZADDs,
#      HSETs, LPUSHes and XADDs into the (now large) sorted set, hash, list
#      and stream.
# Reported: SLOWLOG entries at or above the threshold and the longest ones
# (SLOWLOG times command execution only; redis-benchmark's max latency on a
# shared VM also includes scheduling hiccups no command shows).
#
#   benches/load/collection-stalls.sh [elements] [threshold-us]
#
# Needs target/release/cinnabar, redis-server, redis-cli, redis-benchmark
# and python3.
set -euo pipefail
set -f # the XADD commands below carry a literal "*"
cd "$(dirname "$0")/../.."
N=${1:-2000000}
US=${2:-1000}
PA=7671 PB=7672
run() { # label port start-cmd...
  local label=$1 port=$2; shift 2
  local dir
  dir=$(mktemp -d)
  "$@" --dir "$dir" >/dev/null 2>&1 &
  local pid=$!
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  redis-cli -p "$port" config set slowlog-log-slower-than "$US" >/dev/null
  redis-cli -p "$port" config set slowlog-max-len 10000 >/dev/null
  for t in "hset bighash f:__rand_int__ v" "sadd bigset m:__rand_int__" "zadd bigz __rand_int__ m:__rand_int__" \
    "rpush biglist e:__rand_int__" "xadd bigstream * f __rand_int__"; do
    redis-cli -p "$port" slowlog reset >/dev/null
    # shellcheck disable=SC2086
    redis-benchmark -p "$port" -n "$N" -r 1000000000 -c 50 -q $t >/dev/null 2>&1
    echo "$label growth ${t%% *}: $(slow "$port")"
  done
  redis-cli -p "$port" slowlog reset >/dev/null
  for _ in 1 2 3 4 5; do
    redis-cli -p "$port" bgsave >/dev/null
    local bps=()
    for t in "zadd bigz __rand_int__ m:__rand_int__" "lpush biglist e:__rand_int__" "xadd bigstream * f __rand_int__"; do
      # shellcheck disable=SC2086
      redis-benchmark -p "$port" -n 30000 -r 1000000000 -c 10 -q $t >/dev/null 2>&1 &
      bps+=($!)
    done
    redis-benchmark -p "$port" -n 30000 -r 1000000000 -c 10 -q hset bighash f:__rand_int__ v >/dev/null 2>&1
    wait "${bps[@]}"
    while redis-cli -p "$port" info persistence | grep -q "rdb_bgsave_in_progress:1"; do sleep 0.05; done
  done
  echo "$label snapshot writes: $(slow "$port")"
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -rf "$dir"
}
slow() { # port -> "N entries >= US us, longest: ..."
  redis-cli -p "$1" --json slowlog get 10000 2>/dev/null | python3 -c '
import json, sys
v = sorted((e[2], e[3][0]) for e in json.load(sys.stdin))
print(len(v), "entries >= '"$US"' us, longest (us):", [f"{d} {c}" for d, c in v[-5:]])'
}
run A $PA ./target/release/cinnabar --port $PA --bind 127.0.0.1 --save ""
run B $PB redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no
