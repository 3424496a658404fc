#!/usr/bin/env bash
# Server-side stalls that grow with the dataset, Cinnabar (A) beside
# redis-server (B), each started here on its own port:
#   1. SETs of new keys on a large keyspace (every shard's / Redis's main
#      table grows while they run);
#   2. DELs of nearly all of it (the tables shrink).
# Reported: SLOWLOG entries at or above the threshold and the longest ones
# (SLOWLOG times command execution only; redis-benchmark's max latency on a
# shared VM also includes scheduling hiccups no command shows).
#
#   benches/load/growth-stalls.sh [keys] [new-keys] [threshold-us]
#
# Needs target/release/cinnabar, redis-server, redis-cli, redis-benchmark
# and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${1:-8000000}
NEW=${2:-4000000}
US=${3:-1000}
PA=7661 PB=7662
run() { # label port start-cmd...
  local label=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  local pid=$!
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  redis-cli -p "$port" debug populate "$KEYS" key 16 >/dev/null
  redis-cli -p "$port" config set slowlog-log-slower-than "$US" >/dev/null
  redis-cli -p "$port" config set slowlog-max-len 10000 >/dev/null
  redis-cli -p "$port" slowlog reset >/dev/null
  redis-benchmark -p "$port" -t set -n "$NEW" -r 1000000000 -c 50 -d 16 -q >/dev/null 2>&1
  echo "$label growth: $(slow "$port")"
  redis-cli -p "$port" slowlog reset >/dev/null
  python3 - "$port" "$KEYS" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
gone, batch = n - n // 40, 20000
for start in range(0, gone, batch):
    end = min(start + batch, gone)
    s.sendall(b"".join(b"*2\r\n$3\r\nDEL\r\n$%d\r\nkey:%d\r\n" % (len(b"key:%d" % i), i) for i in range(start, end)))
    got = b""
    while got.count(b"\r\n") < end - start:
        got += s.recv(1 << 20)
PY
  echo "$label shrink: $(slow "$port")"
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
slow() { # port -> "N entries >= US us, longest: ..."
  redis-cli -p "$1" --json slowlog get 10000 2>/dev/null | python3 -c '
import json, sys
v = sorted(e[2] for e in json.load(sys.stdin))
print(len(v), "entries >= '"$US"' us, longest (us):", v[-5:])'
}
run A $PA ./target/release/cinnabar --port $PA --bind 127.0.0.1 --save "" --enable-debug-command yes
run B $PB redis-server --port $PB --bind 127.0.0.1 --save "" --appendonly no --enable-debug-command yes
