#!/usr/bin/env bash
# Ferry's ucx transport against ucx_perftest in one run, on this machine, for each UCX
# medium (UCX_TLS=tcp, then shared memory):
#   ucx_perftest -t ucp_put_bw (server and client on 127.0.0.1)  -> baseline put bandwidth
#   ucx_transport_bench --op write (Ferry's ucx transport, target in a second process,
#     INFLIGHT slices in flight)
# at 1 MiB and 4 MiB, and prints each Ferry figure beside its baseline with the ratio and
# the target (>= 0.9x ucx_perftest's put bandwidth).
# Memory: over tcp both sides use a WORKING_SET of their own pages (mapped, as the engine
# registers them). Over shared memory perftest puts from one buffer of the message size
# into one buffer UCX allocated; the figure with a target does the same (target memory
# from the transport, which the engine's AllocateManagedBuffer gives under ucx, working
# set = the message size), and a second row without a target shows mapped memory over the
# WORKING_SET, which UCX 1.13 reaches only by emulated RMA (docs/ucx.md).
# Output: a human table, then one JSON object line per figure.
#
#   bench/ucx_baselines.sh [build-dir]     # env: DURATION=3 WORKING_SET=256M INFLIGHT=32
#                                          #      MEDIA="tcp sm" PERFTEST_BYTES=1G
# Takes about two minutes. Shared, noisy machines: compare only figures from one run.
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

printf '%-4s %-6s %-14s %14s %14s %7s  %s\n' tls size memory "ferry MB/s" "perftest MB/s" ratio target
JSON=()
# ferry_put TLS MEMORY WORKING_SET SIZES -> the bench's JSON lines
ferry_put() {
  local tls=$1 memory=$2 ws=$3 sizes=$4 params=""
  # UCX 1.13's shared-memory transports lack peer-failure support: error mode none there.
  [[ "$tls" == tcp ]] || params="ucx_err_mode=none"
  "$BIN/ucx_transport_bench" --tls "$tls" --params "$params" --op write --sizes "$sizes" \
    --target-memory "$memory" --working-set "$ws" --inflight "$INFLIGHT" \
    --duration "$DURATION" 2>"$TMP/bench.err" || {
    cat "$TMP/bench.err" >&2
    exit 1
  }
}
row() {  # tls size memory working_set ferry_MBps base_MBps with_target(0/1)
  local tls=$1 size=$2 memory=$3 ws=$4 ferry=$5 base=$6 with_target=$7 b ratio verdict
  b=$(bytes "$size")
  ratio=$(awk -v f="$ferry" -v b="$base" 'BEGIN { printf "%.2f", f / b }')
  if [[ $with_target == 1 ]]; then
    verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9 ? "ok (>= 0.9x)" : "MISS (< 0.9x)") }')
  else
    verdict="(no target: shown for comparison)"
  fi
  printf '%-4s %-6s %-14s %14.1f %14.1f %7s  %s\n' "$tls" "$size" "$memory/$ws" "$ferry" "$base" \
    "$ratio" "$verdict"
  JSON+=("{\"bench\":\"ucx_baselines\",\"tls\":\"$tls\",\"size\":$b,\"target_memory\":\"$memory\",\"working_set\":\"$ws\",\"ferry_MBps\":$ferry,\"ucx_perftest_put_MBps\":$base,\"ratio\":$ratio,\"target\":$([[ $with_target == 1 ]] && echo 0.9 || echo null),\"inflight\":$INFLIGHT}")
}
for tls in $MEDIA; do
  mapped=$(ferry_put "$tls" mapped "$WS" "$(IFS=,; echo "${SIZES[*]}")")
  for size in "${SIZES[@]}"; do
    b=$(bytes "$size")
    # Best of three: a single short perftest run here sometimes lands far below its usual
    # rate, which would flatter the ratio.
    base=$(for _ in 1 2 3; do perftest_put "$tls" "$b"; done | sort -g | tail -1)
    [[ -n "$base" ]] || { echo "ucx_perftest gave no result for $tls $size:" >&2; cat "$TMP/client.txt" >&2; exit 1; }
    f_mapped=$(jq -r "select(.size == $b) | .MBps" <<<"$mapped")
    if [[ "$tls" == tcp ]]; then
      row "$tls" "$size" mapped "$WS" "$f_mapped" "$base" 1
    else
      f_ucx=$(ferry_put "$tls" ucx "$size" "$size" | jq -r '.MBps')
      row "$tls" "$size" ucx "$size" "$f_ucx" "$base" 1
      row "$tls" "$size" mapped "$WS" "$f_mapped" "$base" 0
    fi
  done
done
printf '%s\n' "${JSON[@]}"
