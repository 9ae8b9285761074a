#!/usr/bin/env bash
# Measures Ferry's transfer engine against its baselines in one run, on this machine:
#   iperf3 over 127.0.0.1, one stream, -l equal to the block size (1M for 4M blocks)
#                                                   -> baseline for tcp throughput
#   tcp_stream_bw: one plain TCP stream between two cold buffers of the working-set size
#                                                   -> second tcp baseline (what the kernel
#                                                      copies cost without an engine)
#   single-thread memcpy over the same working set  -> baseline for shm throughput
#   plain TCP ping-pong of 4 KiB                    -> baseline for the 4 KiB write round trip
#   Mooncake's transfer_engine_bench over tcp       -> peer row, when its wheel is installed
# and prints each Ferry figure as a ratio to its baseline with the target:
#   tcp 16K/64K >= 0.7x iperf3, tcp 1M/4M >= 0.8x iperf3 (same -l);
#   shm 16K/64K >= 0.6x memcpy, shm 4M >= 0.7x memcpy (same block size), into managed
#   target memory (AllocateManagedBuffer, which shm peers map: a memcpy); the same into the
#   target's own registered memory (cross-memory attach: a kernel copy) is shown beside
#   them as shm_registered, without a target;
#   4 KiB tcp write RTT <= 1.5x ping-pong.
# Ferry moves batches of SMALL_BATCH (256) requests at 16K/64K and LARGE_BATCH (4) at 1M/4M,
# one initiator thread, default engine settings.
# Output: a human table, then one JSON object line per figure. Exit 1 if a target is missed.
#
#   bench/transfer_baselines.sh [build-dir]
#   env: DURATION=2 WORKING_SET=1G SMALL_BATCH=256 LARGE_BATCH=4
#        MOONCAKE_VENV=/tmp/mc-venv (a venv with mooncake-transfer-engine[-non-cuda]; the
#        peer row is skipped, with the reason, when it is absent)
# Takes about 3 minutes. Shared, noisy machines: compare only figures from one run.
#
# Before every program the script fills and frees 2x the working set of /dev/shm
# ("pretouch"): in this VM the balloon hands freed memory back to the host, and the first
# touch of such memory is ~5x slower, which would slow whichever program ran first.
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/bin"
DURATION=${DURATION:-2}
WS=${WORKING_SET:-1G}
SMALL_BATCH=${SMALL_BATCH:-256}
LARGE_BATCH=${LARGE_BATCH:-4}
SMALL=(16K 64K)
LARGE=(1M 4M)
SIZES=("${SMALL[@]}" "${LARGE[@]}")
for exe in ferry memcpy_bw tcp_pingpong tcp_stream_bw; do
  [[ -x "$BIN/$exe" ]] || { echo "missing $BIN/$exe: build first (cmake --build $BUILD)" >&2; exit 2; }
done
command -v iperf3 >/dev/null || { echo "iperf3 is not installed (apt-get install iperf3)" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 2; }

TMP=$(mktemp -d)
BG_PIDS=()
cleanup() {
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$TMP" /dev/shm/ferry_transfer_bench.pretouch
}
trap cleanup EXIT

bytes_of() {  # 16K -> 16384
  local n=${1%[KMG]} u=${1: -1}
  case $u in K) echo $((n << 10)) ;; M) echo $((n << 20)) ;; G) echo $((n << 30)) ;; *) echo "$1" ;; esac
}
WS_BYTES=$(bytes_of "$WS")
pretouch() {
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    dd if=/dev/zero of=/dev/shm/ferry_transfer_bench.pretouch bs=1M \
      count=$((2 * (WS_BYTES >> 20) + 256)) 2>/dev/null || true
    rm -f /dev/shm/ferry_transfer_bench.pretouch
  fi
}

# A port nobody listens on (checked with ss; iperf3 fails fast if we raced someone).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Htln "sport = :$p" | grep -q .; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; exit 1
}

# Best of three runs: a single short iperf3 run here sometimes lands at half its usual rate,
# which would flatter the ratios below.
declare -A IPERF
for l in 16K 64K 1M; do
  echo "== iperf3 (one stream, -l $l, ${DURATION}s, best of 3)" >&2
  best=0
  for run in 1 2 3; do
    PORT=$(free_port)
    iperf3 -s -B 127.0.0.1 -p "$PORT" -1 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
    timeout 60 iperf3 -c 127.0.0.1 -p "$PORT" -l "$l" -t "$DURATION" -J >"$TMP/iperf.json"
    wait "$pid" 2>/dev/null || true
    best=$(jq -n --argjson best "$best" --slurpfile r "$TMP/iperf.json" \
      '[$best, $r[0].end.sum_received.bits_per_second / 8 / 1e9] | max')
  done
  IPERF[$l]=$best
done
IPERF[4M]=${IPERF[1M]}
iperf_l() { [[ $1 == 4M ]] && echo 1M || echo "$1"; }

declare -A STREAM MEMCPY
for s in "${SIZES[@]}"; do
  echo "== tcp_stream_bw (cold $WS buffers, block $s, best of 2)" >&2
  best=0
  for run in 1 2; do
    pretouch
    v=$(timeout 120 "$BIN/tcp_stream_bw" --block-size "$s" --working-set "$WS" \
      --duration "$DURATION" | grep '^{' | jq '.gbps')
    best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b) ? a : b }')
  done
  STREAM[$s]=$best
  echo "== memcpy (one thread, block $s, working set $WS)" >&2
  pretouch
  MEMCPY[$s]=$(timeout 120 "$BIN/memcpy_bw" --block-size "$s" --working-set "$WS" \
    --duration "$DURATION" | grep '^{' | jq '.gbps')
done

echo "== tcp ping-pong 4 KiB" >&2
PINGPONG_US=$(timeout 60 "$BIN/tcp_pingpong" --size 4096 --duration "$DURATION" | grep '^{' | jq '.rtt_p50_us')

declare -A FERRY
key_of() {
  case $1 in 16384) echo 16K ;; 65536) echo 64K ;; 1048576) echo 1M ;; 4194304) echo 4M ;; *) echo "" ;; esac
}
# shm twice: into managed target memory (AllocateManagedBuffer: the initiator maps it and
# copies with memcpy) and into the target's own registered memory (cross-memory attach).
for t in tcp shm shm_registered; do
  transport=${t%_registered}
  memory=registered
  [[ $t == shm ]] && memory=managed
  for group in small large; do
    if [[ $group == small ]]; then sizes=("${SMALL[@]}") batch=$SMALL_BATCH; else sizes=("${LARGE[@]}") batch=$LARGE_BATCH; fi
    echo "== ferry $t write ${sizes[*]} (batch $batch, target memory $memory)" >&2
    pretouch
    timeout 300 "$BIN/ferry" bench transfer --transport "$transport" --op write --batch-size "$batch" \
      --block-size "$(IFS=,; echo "${sizes[*]}")" --duration "$DURATION" --working-set "$WS" \
      --target-memory "$memory" --json >"$TMP/$t-$group.json"
    while read -r line; do
      k=$(key_of "$(jq '.block_size' <<<"$line")")
      [[ -n $k ]] && FERRY[$t:$k]=$(jq '.gbps' <<<"$line")
    done < <(grep '^{' "$TMP/$t-$group.json")
  done
done
echo "== ferry tcp 4 KiB write round trip" >&2
RTT_US=$(timeout 120 "$BIN/ferry" bench transfer --transport tcp --op write --block-size 4K \
  --batch-size 1 --duration "$DURATION" --working-set 64M --json | grep '^{' | jq '.lat_p50_us')

# Peer row: Mooncake's own transfer_engine_bench (from its wheel) over tcp, P2P handshake,
# the same block sizes, batches and working set, one submission thread.
declare -A MOONCAKE
MC_SKIP=""
MC_VENV=${MOONCAKE_VENV:-/tmp/mc-venv}
MC_BIN=$(ls "$MC_VENV"/lib/python3*/site-packages/mooncake/transfer_engine_bench 2>/dev/null | head -1 || true)
if [[ -z $MC_BIN || ! -x $MC_BIN ]]; then
  MC_SKIP="no transfer_engine_bench under $MC_VENV (python3 -m venv $MC_VENV && $MC_VENV/bin/pip install mooncake-transfer-engine-non-cuda)"
else
  MC_DUR=$(awk -v d="$DURATION" 'BEGIN { printf "%d", (d < 1 ? 1 : d + 0.5) }')
  MC_PORT=$(free_port)
  pretouch
  "$MC_BIN" --mode=target --metadata_server=P2PHANDSHAKE --protocol=tcp \
    --local_server_name="127.0.0.1:$MC_PORT" --buffer_size="$WS_BYTES" >"$TMP/mc-target.log" 2>&1 &
  BG_PIDS+=($!)
  MC_SEG=""
  for _ in $(seq 100); do
    MC_SEG=$(grep -o 'P2P handshake, listening on [0-9.]*:[0-9]*' "$TMP/mc-target.log" | awk '{ print $NF }' || true)
    [[ -n $MC_SEG ]] && grep -q 'DRAM is used\|numa node' "$TMP/mc-target.log" && break
    sleep 0.2
  done
  if [[ -z $MC_SEG ]]; then
    MC_SKIP="mooncake target did not start (see its log: $(tail -1 "$TMP/mc-target.log"))"
  else
    for s in "${SIZES[@]}"; do
      batch=$LARGE_BATCH
      [[ $s == 16K || $s == 64K ]] && batch=$SMALL_BATCH
      echo "== mooncake transfer_engine_bench tcp write $s (batch $batch)" >&2
      timeout 120 "$MC_BIN" --mode=initiator --metadata_server=P2PHANDSHAKE --protocol=tcp \
        --local_server_name="127.0.0.1:$(free_port)" --segment_id="$MC_SEG" --operation=write \
        --block_size="$(bytes_of "$s")" --batch_size="$batch" --threads=1 --duration="$MC_DUR" \
        --buffer_size="$WS_BYTES" --report_unit=GB >"$TMP/mc-$s.log" 2>&1 || true
      v=$(grep -o 'throughput [0-9.]* GB/s' "$TMP/mc-$s.log" | awk '{ print $2 }' | tail -1)
      [[ -n $v ]] && MOONCAKE[$s]=$v || echo "mooncake $s: no figure ($(tail -1 "$TMP/mc-$s.log"))" >&2
    done
  fi
fi
[[ -n $MC_SKIP ]] && echo "== mooncake peer row skipped: $MC_SKIP" >&2

# figure, ferry value, unit, baseline name, baseline value, target ratio, "ge" or "le",
# and optionally a second baseline name and value (ratio shown, no target)
rows=()
for s in "${SIZES[@]}"; do
  tgt_tcp=0.8; tgt_shm=null
  case $s in 16K | 64K) tgt_tcp=0.7; tgt_shm=0.6 ;; 4M) tgt_shm=0.7 ;; esac
  rows+=("tcp_write_$s ${FERRY[tcp:$s]:-0} GB/s iperf3_l$(iperf_l "$s") ${IPERF[$s]} $tgt_tcp ge cold_stream_$s ${STREAM[$s]}")
done
for s in "${SIZES[@]}"; do
  tgt_shm=null
  case $s in 16K | 64K) tgt_shm=0.6 ;; 4M) tgt_shm=0.7 ;; esac
  rows+=("shm_write_$s ${FERRY[shm:$s]:-0} GB/s memcpy_$s ${MEMCPY[$s]} $tgt_shm ge")
done
for s in "${SIZES[@]}"; do
  rows+=("shm_registered_write_$s ${FERRY[shm_registered:$s]:-0} GB/s memcpy_$s ${MEMCPY[$s]} null ge")
done
rows+=("tcp_write_4K_rtt_p50 $RTT_US us tcp_pingpong_4K $PINGPONG_US 1.5 le")
for s in "${SIZES[@]}"; do
  [[ -n ${MOONCAKE[$s]:-} ]] && rows+=("tcp_write_$s ${FERRY[tcp:$s]:-0} GB/s mooncake_tcp_$s ${MOONCAKE[$s]} null ge")
done

printf '\n%-22s %8s %5s  %-16s %8s %6s %10s  %-16s %8s %6s\n' figure ferry unit baseline value ratio target \
  baseline2 value2 ratio2
status=0
json=()
for r in "${rows[@]}"; do
  read -r fig val unit bname bval tgt dir b2name b2val <<<"$r"
  ratio=$(awk -v a="$val" -v b="$bval" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
  pass=null; mark=""
  if [[ $tgt != null ]]; then
    if [[ $dir == ge ]]; then
      pass=$(awk -v r="$ratio" -v t="$tgt" 'BEGIN { print (r >= t) ? "true" : "false" }')
      mark=">= $tgt"
    else
      pass=$(awk -v r="$ratio" -v t="$tgt" 'BEGIN { print (r <= t) ? "true" : "false" }')
      mark="<= $tgt"
    fi
    [[ $pass == true ]] && mark="$mark ok" || { mark="$mark MISS"; status=1; }
  fi
  second="" ratio2=null
  if [[ -n ${b2name:-} ]]; then
    ratio2=$(awk -v a="$val" -v b="$b2val" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    second=$(printf '%-16s %8.3f %6s' "$b2name" "$b2val" "$ratio2")
  fi
  printf '%-22s %8.3f %5s  %-16s %8.3f %6s %10s  %s\n' "$fig" "$val" "$unit" "$bname" "$bval" \
    "$ratio" "$mark" "$second"
  json+=("$(jq -cn --arg f "$fig" --argjson v "$val" --arg u "$unit" --arg b "$bname" \
    --argjson bv "$bval" --argjson r "$ratio" --argjson t "$tgt" --argjson p "$pass" \
    --arg b2 "${b2name:-}" --argjson b2v "${b2val:-null}" --argjson r2 "$ratio2" \
    --arg ws "$WS" '{bench:"transfer_baselines",figure:$f,ferry:$v,unit:$u,baseline:$b,
      baseline_value:$bv,ratio:$r,target:$t,pass:$p,working_set:$ws}
      + (if $b2 == "" then {} else {baseline2:$b2,baseline2_value:$b2v,ratio2:$r2} end)')")
done
[[ -n $MC_SKIP ]] && echo "(mooncake peer row skipped: $MC_SKIP)"
echo
printf '%s\n' "${json[@]}"
exit $status
