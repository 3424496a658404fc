#!/usr/bin/env bash
# Full resynchronisation time: one Cinnabar primary holding KEYS keys
# (DEBUG POPULATE, 100-byte values, diskless sync), followed in turn by a
# fresh Cinnabar replica and, when redis-server is installed, a fresh
# redis-server replica, each with `repl-diskless-load disabled` (snapshot
# received into a file, then loaded) and `swapdb` (loaded as it arrives).
# Prints seconds from REPLICAOF to master_link_status:up and the replica's
# peak RSS, alternating, ROUNDS times.
#
#   benches/load/fullsync.sh [keys] [rounds]
#
# Needs target/release/cinnabar and redis-cli; redis-server optional.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${1:-1000000}
ROUNDS=${2:-3}
BIN=$PWD/target/release/cinnabar
W=$(mktemp -d)
trap 'redis-cli -p 34301 shutdown nosave >/dev/null 2>&1 || true; redis-cli -p 34300 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
mkdir -p "$W/p" "$W/r"
(cd "$W/p" && "$BIN" --port 34300 --bind 127.0.0.1 --save '' --enable-debug-command yes \
  --repl-diskless-sync-delay 0 >log 2>&1 &)
until redis-cli -p 34300 ping >/dev/null 2>&1; do sleep 0.05; done
redis-cli -p 34300 debug populate "$KEYS" key 100 >/dev/null
servers=(cinnabar)
command -v redis-server >/dev/null && servers+=(redis-server)
for round in $(seq 1 "$ROUNDS"); do
  for srv in "${servers[@]}"; do
    for mode in disabled swapdb; do
      rm -rf "$W/r"/*
      if [ "$srv" = cinnabar ]; then exe=$BIN; else exe=redis-server; fi
      (cd "$W/r" && "$exe" --port 34301 --bind 127.0.0.1 --save '' --dir "$W/r" \
        --repl-diskless-load "$mode" >log 2>&1 &)
      until redis-cli -p 34301 ping >/dev/null 2>&1; do sleep 0.02; done
      pid=$(redis-cli -p 34301 info server | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
      t0=$(date +%s.%N)
      redis-cli -p 34301 replicaof 127.0.0.1 34300 >/dev/null
      until redis-cli -p 34301 info replication | grep -q 'master_link_status:up'; do sleep 0.02; done
      t1=$(date +%s.%N)
      hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
      printf 'round %s %-12s %-8s %6.3f s  peak RSS %7s kB\n' "$round" "$srv" "$mode" \
        "$(echo "$t1 - $t0" | bc)" "$hwm"
      redis-cli -p 34301 shutdown nosave >/dev/null 2>&1 || true
      while redis-cli -p 34301 ping >/dev/null 2>&1; do sleep 0.05; done
    done
  done
done
