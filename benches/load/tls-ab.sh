#!/usr/bin/env bash
# TLS side by side: Cinnabar (A) vs redis-server (B) with TLS, both started
# here with the same development certificate (`cinnabar dev-cert`), plain
# port off, measured in alternation in one run (A then B, B then A, ...):
#   * GET and SET, 50 clients, pipeline 1 and 16 (redis-benchmark --tls);
#   * handshake rate: `redis-benchmark --tls -k 0 -t ping_mbulk`, i.e. a new
#     TCP connection and a full TLS handshake (TLS 1.3, no resumption:
#     redis-benchmark does not reuse sessions) for every PING; the figure
#     is connections per second, client CPU included for both servers.
# Prints ops/s per round, the mean per workload and the ratio A/B, and the
# server's CPU time per request (utime+stime from /proc, microseconds), which
# is less sensitive than ops/s to other load on a shared machine.
#
#   benches/load/tls-ab.sh [rounds] [requests] [handshakes]
#
# Extra flags for Cinnabar: CINNABAR_ARGS in the environment (e.g.
# CINNABAR_ARGS="--worker-threads 1").
# Needs target/release/cinnabar, and redis-server / redis-benchmark built
# with TLS (Debian's are) on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=${2:-200000}
H=${3:-5000}
PA=${PA:-7641} PB=${PB:-7642}
WORK=$(mktemp -d)
A= B=
cleanup() {
  [ -n "$A" ] && kill "$A" 2>/dev/null
  [ -n "$B" ] && kill "$B" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
./target/release/cinnabar dev-cert --out "$WORK/tls" >/dev/null
T="$WORK/tls"
TLSARGS=(--tls-cert-file "$T/server.crt" --tls-key-file "$T/server.key"
  --tls-ca-cert-file "$T/ca.crt" --tls-auth-clients no)
# shellcheck disable=SC2086 # CINNABAR_ARGS: extra flags, word-split on purpose
./target/release/cinnabar --port 0 --tls-port $PA --bind 127.0.0.1 --save "" \
  "${TLSARGS[@]}" ${CINNABAR_ARGS:-} >"$WORK/a.log" 2>&1 &
A=$!
redis-server --port 0 --tls-port $PB --bind 127.0.0.1 --save "" --appendonly no \
  "${TLSARGS[@]}" >"$WORK/b.log" 2>&1 &
B=$!
cli() { redis-cli --tls --cacert "$T/ca.crt" -p "$1" "${@:2}"; }
for p in $PA $PB; do
  for _ in $(seq 100); do cli $p ping >/dev/null 2>&1 && break; sleep 0.05; done
  cli $p ping | grep -q PONG || { echo "server on $p did not start"; cat "$WORK"/*.log; exit 1; }
done

# pid -> CPU ticks (utime+stime) of the process
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

# port pid workload -> "requests-per-second cpu-us-per-request"
run() {
  local p=$1 pid=$2 w=$3 args n t0 t1 rps
  case $w in
    get) n=$N; args=(-t get -c 50 -r 100000) ;;
    set) n=$N; args=(-t set -c 50 -r 100000) ;;
    get_P16) n=$((N * 4)); args=(-t get -c 50 -P 16 -r 100000) ;;
    set_P16) n=$((N * 4)); args=(-t set -c 50 -P 16 -r 100000) ;;
    handshake) n=$H; args=(-t ping_mbulk -c 50 -k 0) ;;
  esac
  t0=$(ticks "$pid")
  rps=$(redis-benchmark --tls --cacert "$T/ca.crt" -p "$p" -n "$n" "${args[@]}" --csv 2>/dev/null |
    awk -F'"' 'NR>1 {print $4; exit}')
  t1=$(ticks "$pid")
  echo "$rps $(awk -v d=$((t1 - t0)) -v n="$n" -v k="$TCK" 'BEGIN{printf "%.2f", d / k * 1e6 / n}')"
}

echo "# loadavg before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $ROUNDS rounds, $N requests (x4 with -P 16), $H handshakes"
WORKLOADS="get set get_P16 set_P16 handshake"
declare -A SUM_A SUM_B CPU_A CPU_B
for w in $WORKLOADS; do SUM_A[$w]=0; SUM_B[$w]=0; CPU_A[$w]=0; CPU_B[$w]=0; done
for r in $(seq "$ROUNDS"); do
  for w in $WORKLOADS; do
    if [ $((r % 2)) = 1 ]; then
      ra=$(run $PA $A $w); rb=$(run $PB $B $w)
    else
      rb=$(run $PB $B $w); ra=$(run $PA $A $w)
    fi
    a=${ra% *} b=${rb% *} ca=${ra#* } cb=${rb#* }
    SUM_A[$w]=$(awk -v s="${SUM_A[$w]}" -v x="$a" 'BEGIN{print s+x}')
    SUM_B[$w]=$(awk -v s="${SUM_B[$w]}" -v x="$b" 'BEGIN{print s+x}')
    CPU_A[$w]=$(awk -v s="${CPU_A[$w]}" -v x="$ca" 'BEGIN{print s+x}')
    CPU_B[$w]=$(awk -v s="${CPU_B[$w]}" -v x="$cb" 'BEGIN{print s+x}')
    printf 'round %d %-9s A %10.0f  B %10.0f  A/B %.3f   cpu us/req A %7.2f B %7.2f\n' \
      "$r" "$w" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')" "$ca" "$cb"
  done
done
echo "# loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Each handshake run must have opened about H connections (-k 0 works).
for p in $PA $PB; do
  echo "# port $p: $(cli $p info stats | tr -d '\r' | grep total_connections_received)"
done
echo "# mean over $ROUNDS rounds (ops/s; handshake = new TLS connections/s; server CPU us per request)"
for w in $WORKLOADS; do
  awk -v w="$w" -v a="${SUM_A[$w]}" -v b="${SUM_B[$w]}" -v n="$ROUNDS" \
    -v ca="${CPU_A[$w]}" -v cb="${CPU_B[$w]}" \
    'BEGIN{printf "%-9s cinnabar %10.0f  redis %10.0f  ratio %.3f   cpu/req cinnabar %.2f redis %.2f (A/B %.3f)\n", w, a/n, b/n, a/b, ca/n, cb/n, ca/cb}'
done
