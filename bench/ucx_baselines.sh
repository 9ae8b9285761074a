#!/usr/bin/env bash
# Ferry's ucx transport against ucx_perftest in one run, on this machine, for each UCX
# medium (UCX_TLS=tcp, then shared memory):
#   ucx_perftest -t ucp_put_bw (server and client on 127.0.0.1)  -> baseline put bandwidth
#   ucx_transport_bench --op write (Ferry's ucx transport, target in a second process,
#     working set >= 256 MiB, INFLIGHT slices in flight)
# at 1 MiB and 4 MiB, and prints each Ferry figure beside its baseline with the ratio and
# the target (>= 0.9x ucx_perftest's put bandwidth).
# Output: a human table, then one JSON object line per figure.
#
#   bench/ucx_baselines.sh [build-dir]     # env: DURATION=3 WORKING_SET=256M INFLIGHT=32
#                                          #      MEDIA="tcp sm" PERFTEST_BYTES=1G
# Takes about a minute. Shared, noisy machines: compare only figures from one run.
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/bin"
DURATION=${DURATION:-3}
WS=${WORKING_SET:-256M}
INFLIGHT=${INFLIGHT:-32}
MEDIA=${MEDIA:-"tcp sm"}
PERFTEST_BYTES=${PERFTEST_BYTES:-1073741824}  # per ucx_perftest run (iterations = this / size)
SIZES=(1M 4M)
[[ -x "$BIN/ucx_transport_bench" ]] || {
  echo "missing $BIN/ucx_transport_bench: build with UCX (cmake --build $BUILD --target ucx_transport_bench)" >&2
  exit 2
}
command -v ucx_perftest >/dev/null || { echo "ucx_perftest is missing (apt-get install ucx-utils)" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 2; }

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

bytes() {
  case "$1" in
    *K) echo $(( ${1%K} * 1024 )) ;;
    *M) echo $(( ${1%M} * 1024 * 1024 )) ;;
    *) echo "$1" ;;
  esac
}

# ucx_perftest's put bandwidth in MB/s (10^6 bytes) for one medium and size.
perftest_put() {
  local tls=$1 size=$2 port=$((20000 + RANDOM % 40000))
  local iters=$((PERFTEST_BYTES / size))
  UCX_TLS=$tls ucx_perftest -t ucp_put_bw -s "$size" -n "$iters" -p "$port" >"$TMP/server.txt" 2>&1 &
  SERVER_PID=$!
  sleep 1
  UCX_TLS=$tls ucx_perftest 127.0.0.1 -t ucp_put_bw -s "$size" -n "$iters" -p "$port" \
    >"$TMP/client.txt" 2>&1 || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  # "Final: iters typical avg overall bw_avg bw_overall(MB/s) ..." (MB = 2^20 bytes)
  awk '/^Final:/ { printf "%.1f\n", $7 * 1048576 / 1e6 }' "$TMP/client.txt"
}

printf '%-4s %-6s %14s %14s %7s  %s\n' tls size "ferry MB/s" "perftest MB/s" ratio target
JSON=()
for tls in $MEDIA; do
  # UCX 1.13's shared-memory transports lack peer-failure support: error mode none there.
  params=""
  [[ "$tls" == tcp ]] || params="ucx_err_mode=none"
  ferry_out=$("$BIN/ucx_transport_bench" --tls "$tls" --params "$params" --op write --sizes "$(IFS=,; echo "${SIZES[*]}")" \
    --working-set "$WS" --inflight "$INFLIGHT" --duration "$DURATION" 2>"$TMP/bench.err") || {
    cat "$TMP/bench.err" >&2
    exit 1
  }
  for size in "${SIZES[@]}"; do
    b=$(bytes "$size")
    ferry=$(jq -r "select(.size == $b) | .MBps" <<<"$ferry_out")
    base=$(perftest_put "$tls" "$b")
    [[ -n "$base" ]] || { echo "ucx_perftest gave no result for $tls $size:" >&2; cat "$TMP/client.txt" >&2; exit 1; }
    ratio=$(awk -v f="$ferry" -v b="$base" 'BEGIN { printf "%.2f", f / b }')
    verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9 ? "ok (>= 0.9x)" : "MISS (< 0.9x)") }')
    printf '%-4s %-6s %14.1f %14.1f %7s  %s\n' "$tls" "$size" "$ferry" "$base" "$ratio" "$verdict"
    JSON+=("{\"bench\":\"ucx_baselines\",\"tls\":\"$tls\",\"size\":$b,\"ferry_MBps\":$ferry,\"ucx_perftest_put_MBps\":$base,\"ratio\":$ratio,\"target\":0.9,\"inflight\":$INFLIGHT,\"working_set\":\"$WS\"}")
  done
done
printf '%s\n' "${JSON[@]}"
