#!/usr/bin/env bash
# CI smoke test of the Azure Cache profile with real Redis tools: starts
# target/release/cinnabar with config/azure-cache.toml (TLS only, on 6380,
# with an access key) and a fresh `cinnabar dev-cert`, then
#   redis-cli --tls --cacert tls/ca.crt -p 6380 -a KEY ping   -> PONG
#   redis-benchmark --tls … -n 2000 -t set,get -q              -> succeeds
# Fails loudly (server log shown) on any error; always stops the server.
# SMOKE_PORT overrides the port (default 6380, the profile's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/release/cinnabar
PORT=${SMOKE_PORT:-6380}
KEY=ci-smoke-primary-key
KEY2=ci-smoke-secondary-key

fail() {
  echo "tls-smoke: FAILED: $*" >&2
  [ -f "${WORK:-/nonexistent}/server.log" ] && { echo "--- server log ---" >&2; cat "$WORK/server.log" >&2; }
  exit 1
}
for tool in redis-cli redis-benchmark; do
  command -v $tool >/dev/null || fail "$tool not found (apt-get install redis-tools)"
done
[ -x "$BIN" ] || fail "$BIN missing (cargo build --release)"

WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
"$BIN" dev-cert --out tls >/dev/null || fail "dev-cert"
"$BIN" "$ROOT/config/azure-cache.toml" --tls-port "$PORT" --dir "$WORK" \
  --primary-access-key "$KEY" --secondary-access-key "$KEY2" >server.log 2>&1 &
PID=$!

cli() { timeout 10 redis-cli --tls --cacert tls/ca.crt -h 127.0.0.1 -p "$PORT" --no-auth-warning "$@"; }
ready=
for _ in $(seq 100); do # up to ~10 s
  kill -0 "$PID" 2>/dev/null || fail "server exited during startup"
  if [ "$(cli -a "$KEY" ping 2>/dev/null)" = PONG ]; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "no PONG over TLS on port $PORT within 10 s"

out=$(cli -a "$KEY" ping) && [ "$out" = PONG ] || fail "primary key: got '$out'"
out=$(cli -a "$KEY2" ping) && [ "$out" = PONG ] || fail "secondary key: got '$out'"
out=$(cli -a wrong-key ping 2>&1 || true)
case $out in *WRONGPASS*) ;; *) fail "wrong key accepted: '$out'" ;; esac
# The profile turns the plain port off and blocks CONFIG as Azure does.
out=$(cli -a "$KEY" config get maxmemory 2>&1 || true)
case $out in *"unknown command"*) ;; *) fail "CONFIG not blocked: '$out'" ;; esac

bench=$(timeout 60 redis-benchmark --tls --cacert tls/ca.crt -h 127.0.0.1 -p "$PORT" \
  -a "$KEY" -n 2000 -c 10 -t set,get -q 2>&1) || fail "redis-benchmark: $bench"
echo "$bench" | tr '\r' '\n' | grep -q '^SET: .* requests per second' || fail "no SET result: $bench"
echo "$bench" | tr '\r' '\n' | grep -q '^GET: .* requests per second' || fail "no GET result: $bench"
echo "$bench" | tr '\r' '\n' | grep -E '^(SET|GET):' | grep 'requests per second'
echo "tls-smoke: OK (redis-cli PONG, redis-benchmark set/get over TLS on $PORT)"
