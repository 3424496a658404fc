#!/usr/bin/env bash
# Persistence side by side: Cinnabar (A) vs redis-server (B), both started
# here with the same dataset, measured in the same run:
#   1. GET/SET throughput and max latency without a snapshot, then while
#      BGSAVE runs back to back (the longest client-visible stall);
#   2. SET throughput with appendonly yes/appendfsync everysec vs AOF off;
#   3. time to load a dump of the dataset at startup (wall clock from
#      spawn to the first reply that is not -LOADING).
#
#   benches/load/persistence-ab.sh [keys] [requests]
#
# Needs target/release/cinnabar, redis-server and redis-benchmark on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${1:-1000000}
N=${2:-1000000}
PA=7621 PB=7622
WORK=$(mktemp -d)
mkdir -p "$WORK/a" "$WORK/b"
start_a() { ./target/release/cinnabar --port $PA --bind 127.0.0.1 --save "" --dir "$WORK/a" --enable-debug-command yes "$@" >"$WORK/a.log" 2>&1 & echo $!; }
start_b() { redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/b" --enable-debug-command yes "$@" >"$WORK/b.log" 2>&1 & echo $!; }
A=$(start_a); B=$(start_b)
# (kill with no pid when A/B are cleared: "kill 0" would signal our whole process group)
trap 'for p in $A $B; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
sleep 0.5
for p in $PA $PB; do
  redis-cli -p $p debug populate "$KEYS" key 16 >/dev/null
  n=$(redis-cli -p $p dbsize)
  [ "$n" = "$KEYS" ] || { echo "port $p holds $n keys, not $KEYS: DEBUG POPULATE failed" >&2; exit 1; }
done

bench() { # port tests -> "rps max_ms" per test (csv: test,rps,avg,min,p50,p95,p99,max)
  redis-benchmark -p "$1" -t "$2" -n "$N" -r "$KEYS" -c 50 -d 16 --csv 2>/dev/null |
    awk -F'"' 'NR>1 {printf "%s %s %s\n", $2, $4, $16}'
}
saver() { # port: BGSAVE back to back until killed. One redis-cli, one
  # connection: BGSAVE every 0.1 s, answered "already in progress" while a
  # save runs. (A loop spawning redis-cli to poll INFO every 50 ms cost
  # both servers ~10% of their throughput on two cores by itself.)
  redis-cli -p "$1" -r -1 -i 0.1 bgsave 2>/dev/null | grep -c started
}
echo "== 1. GET/SET with and without BGSAVE ($KEYS keys, $N requests, 50 clients)"
for who in A B; do
  p=$([ $who = A ] && echo $PA || echo $PB)
  base=$(bench $p set,get)
  saver $p >"$WORK/saves" & S=$!
  sleep 0.2
  during=$(bench $p set,get)
  pkill -f "redis-cli -p $p -r -1" || true; wait $S 2>/dev/null || true
  saves=$(cat "$WORK/saves")
  while read -r t rps max; do
    d=$(echo "$during" | awk -v t="$t" '$1==t {print $2, $3}')
    echo "$who $t: without save ${rps} ops/s (max ${max} ms) | during BGSAVE ${d% *} ops/s (max ${d#* } ms) | ratio $(awk -v a="${d% *}" -v b="$rps" 'BEGIN{printf "%.3f", a/b}') ($saves BGSAVEs started during both runs)"
  done <<<"$base"
done

echo "== 2. SET with appendonly yes (everysec) vs no"
for who in A B; do
  p=$([ $who = A ] && echo $PA || echo $PB)
  off=$(bench $p set | awk '{print $2}')
  redis-cli -p $p config set appendonly yes >/dev/null
  while redis-cli -p $p info persistence | grep -q 'aof_rewrite_in_progress:1'; do sleep 0.1; done
  on=$(bench $p set | awk '{print $2}')
  redis-cli -p $p config set appendonly no >/dev/null
  echo "$who SET: AOF off ${off} ops/s, everysec ${on} ops/s, ratio $(awk -v a="$on" -v b="$off" 'BEGIN{printf "%.3f", a/b}')"
done

echo "== 3. Load time of a $KEYS-key dump"
redis-cli -p $PA save >/dev/null
redis-cli -p $PB save >/dev/null
ls -la "$WORK/a/dump.rdb" "$WORK/b/dump.rdb" | awk '{print $5, $9}'
# The servers are not this shell's children (started in $(...)): `wait`
# cannot wait for them, so poll until they are gone and their ports free.
stop() { kill "$@" 2>/dev/null || true; for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 0.02; done; done; }
stop $A $B
load_time() { # port start-function -> seconds until DBSIZE answers
  local t0 t1 pid
  t0=$(date +%s.%N)
  pid=$($2)
  until r=$(redis-cli -p "$1" dbsize 2>/dev/null) && [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -gt 0 ]; do sleep 0.005; done
  t1=$(date +%s.%N)
  stop "$pid"
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
}
for round in 1 2 3; do
  la=$(load_time $PA start_a); lb=$(load_time $PB start_b)
  echo "round $round: A ${la}s  B ${lb}s  A/B $(awk -v a="$la" -v b="$lb" 'BEGIN{printf "%.3f", a/b}')"
done
A=""; B=""
