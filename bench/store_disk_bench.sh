#!/usr/bin/env bash
# Measures the SSD tier's BucketStore (store_disk_bench) against dd and fio in one run, on
# the same directory, and prints each Ferry figure as a ratio to its baselines (target:
# >= 0.7x for write and read):
#   write        Ferry 1 MiB objects in 64 MiB buckets (fdatasync per bucket)
#                vs dd bs=1M conv=fdatasync (from /dev/zero) and fio seq write 1 MiB, end_fsync
#   read         Ferry read-back, buffered        vs dd bs=1M        and fio seq read 1 MiB
#   read_direct  Ferry read-back, direct_io       vs dd iflag=direct and fio seq read --direct=1
#   small_read   Ferry 64 KiB objects, random order, ops/s, buffered and direct
#                vs fio randread 64 KiB (psync, one job, queue depth 1), --direct=0 and 1
# Fairness: every program does one synchronous request at a time from one thread; every read
# row starts with a dropped page cache (sync; echo 3 > /proc/sys/vm/drop_caches) when that
# works here (it says so), else all read rows run right after their write, cache warm alike.
# Ferry checks an XXH3 checksum of every object it reads; the baselines check nothing.
# Each figure is the best of ROUNDS rounds (a shared machine is noisy); every round runs
# Ferry, dd and fio back to back, Ferry first in odd rounds and last in even ones. Before the
# first round, a warm-up writes and reads 2x TOTAL_MIB once, and right before each program's
# writes the script fills and frees TOTAL_MIB of /dev/shm ("pretouch"): in a VM with a free
# page reporting balloon (virtio_balloon here), memory freed for a few seconds goes back to
# the host and costs a host fault per page on next use, which made buffered writes up to 5x
# slower for whichever program ran later after a pause; pretouch gives every writer pages
# freed a moment ago.
#
#   bench/store_disk_bench.sh [build-dir]   # env: DIR=/tmp/ferry_disk_bench TOTAL_MIB=1024
#                                           #      SMALL_MIB=256 ROUNDS=3
# Output: a human table, then one JSON object line per figure.
set -euo pipefail
export LC_ALL=C

BUILD=${1:-build}
BIN="$BUILD/bin/store_disk_bench"
DIR=${DIR:-/tmp/ferry_disk_bench}
TOTAL_MIB=${TOTAL_MIB:-1024}
SMALL_MIB=${SMALL_MIB:-256}
ROUNDS=${ROUNDS:-3}
[[ -x "$BIN" ]] || { echo "missing $BIN: build first (ninja -C $BUILD store_disk_bench)" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is not installed (apt-get install jq)" >&2; exit 2; }
HAVE_FIO=no
command -v fio >/dev/null && HAVE_FIO=yes

mkdir -p "$DIR"
TMP=$(mktemp -d)
cleanup() { rm -rf "$TMP" "$DIR/dd.bin" "$DIR/fio.bin" "$DIR/ferry_store"; }
trap cleanup EXIT

DROP=no
if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then DROP=yes; fi
drop() { if [[ $DROP == yes ]]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi; }
SHM=${SHM:-/dev/shm}
pretouch() {
  if [[ -d $SHM && -w $SHM ]]; then
    dd if=/dev/zero of="$SHM/ferry_disk_bench.pretouch" bs=1M count=$((TOTAL_MIB + 128)) 2>/dev/null || true
    rm -f "$SHM/ferry_disk_bench.pretouch"
  fi
}
FERRY_FLAGS=(--dir "$DIR" --total_mib "$TOTAL_MIB" --small_total_mib "$SMALL_MIB")
[[ $DROP == yes ]] && FERRY_FLAGS+=(--drop_caches)

# Keeps the best value of figure $1 seen so far: best NAME VALUE.
declare -A BEST
best() {
  local cur=${BEST[$1]:-0}
  if awk -v a="$2" -v b="$cur" 'BEGIN { exit !(a > b) }'; then BEST[$1]=$2; fi
}
# dd's summary line -> GB/s.
dd_gbps() { sed -nE 's/^([0-9]+) bytes .* copied, ([0-9.e+-]+) s,.*/\1 \2/p' | awk '{ printf "%.4f", $1 / $2 / 1e9 }'; }
fio_run() {  # fio_run NAME ARGS... -> JSON in $TMP/NAME.json
  local name=$1
  shift
  fio --name="$name" --filename="$DIR/fio.bin" --ioengine=psync --numjobs=1 --iodepth=1 \
    --output-format=json "$@" >"$TMP/$name.json"
}

run_ferry() {
  echo "round $round/$ROUNDS: ferry" >&2
  pretouch
  "$BIN" "${FERRY_FLAGS[@]}" | grep '^{' >"$TMP/ferry.jsonl"
  for t in write read read_direct small_read small_read_direct open; do
    best "ferry_${t}_gbps" "$(jq -r --arg t "$t" 'select(.test == $t) | .gb_per_s' "$TMP/ferry.jsonl")"
    best "ferry_${t}_ops" "$(jq -r --arg t "$t" 'select(.test == $t) | .ops_per_s' "$TMP/ferry.jsonl")"
  done
}

run_dd() {
  echo "round $round/$ROUNDS: dd" >&2
  rm -f "$DIR/dd.bin"
  pretouch
  best dd_write_gbps "$(dd if=/dev/zero of="$DIR/dd.bin" bs=1M count="$TOTAL_MIB" conv=fdatasync 2>&1 | dd_gbps)"
  drop
  best dd_read_gbps "$(dd if="$DIR/dd.bin" of=/dev/null bs=1M 2>&1 | dd_gbps)"
  drop
  best dd_read_direct_gbps "$(dd if="$DIR/dd.bin" of=/dev/null bs=1M iflag=direct 2>&1 | dd_gbps)"
  rm -f "$DIR/dd.bin"
}

run_fio() {
  [[ $HAVE_FIO == yes ]] || return 0
  echo "round $round/$ROUNDS: fio" >&2
  rm -f "$DIR/fio.bin"
  pretouch
  fio_run w --rw=write --bs=1M --size="${TOTAL_MIB}M" --end_fsync=1
  best fio_write_gbps "$(jq '.jobs[0].write.bw_bytes / 1e9' "$TMP/w.json")"
  for direct in 0 1; do
    suffix=$([[ $direct == 1 ]] && echo _direct || true)
    drop
    fio_run r --rw=read --bs=1M --size="${TOTAL_MIB}M" --direct=$direct
    best "fio_read${suffix}_gbps" "$(jq '.jobs[0].read.bw_bytes / 1e9' "$TMP/r.json")"
    drop
    fio_run rr --rw=randread --bs=64k --size="${SMALL_MIB}M" --direct=$direct
    best "fio_small_read${suffix}_ops" "$(jq '.jobs[0].read.iops' "$TMP/rr.json")"
  done
  rm -f "$DIR/fio.bin"
}

echo "warm-up: $((2 * TOTAL_MIB)) MiB through the page cache" >&2
dd if=/dev/zero of="$DIR/dd.bin" bs=1M count=$((2 * TOTAL_MIB)) conv=fdatasync 2>/dev/null
dd if="$DIR/dd.bin" of=/dev/null bs=1M 2>/dev/null
rm -f "$DIR/dd.bin"
drop

for round in $(seq "$ROUNDS"); do
  if ((round % 2 == 1)); then
    run_ferry
    run_dd
    run_fio
  else
    run_dd
    run_fio
    run_ferry
  fi
done

FS=$(df -T "$DIR" | awk 'NR == 2 { print $2 }')
echo
echo "store_disk_bench.sh: $DIR ($FS), ${TOTAL_MIB} MiB of 1 MiB objects, ${SMALL_MIB} MiB of 64 KiB;" \
  "page cache dropped before reads: $DROP; best of $ROUNDS rounds"
printf "%-18s %10s %10s %10s %8s %8s\n" "figure" "ferry" "dd" "fio" "/dd" "/fio"
row() {  # row FIGURE UNIT FERRY_KEY DD_KEY FIO_KEY
  local f=${BEST[$3]:-0} d="" o=""
  [[ -n $4 ]] && d=${BEST[$4]:-}
  [[ -n $5 ]] && o=${BEST[$5]:-}
  local rd=- ro=-
  [[ -n $d ]] && rd=$(awk -v a="$f" -v b="$d" 'BEGIN { printf "%.2f", a / b }')
  [[ -n $o ]] && ro=$(awk -v a="$f" -v b="$o" 'BEGIN { printf "%.2f", a / b }')
  printf "%-18s %10.3f %10s %10s %8s %8s   %s\n" "$1" "$f" "${d:--}" "${o:--}" "$rd" "$ro" "$2"
  jq -cn --arg figure "$1" --arg unit "$2" --argjson ferry "$f" --arg dd "${d:-}" --arg fio "${o:-}" \
    --arg rd "$rd" --arg ro "$ro" --arg drop "$DROP" --arg fs "$FS" \
    '{bench: "store_disk_baselines", figure: $figure, unit: $unit, ferry: $ferry,
      dd: ($dd | tonumber? // null), fio: ($fio | tonumber? // null),
      ratio_dd: ($rd | tonumber? // null), ratio_fio: ($ro | tonumber? // null),
      page_cache_dropped: ($drop == "yes"), fs: $fs}' >>"$TMP/rows.jsonl"
}
row write GB/s ferry_write_gbps dd_write_gbps fio_write_gbps
row read GB/s ferry_read_gbps dd_read_gbps fio_read_gbps
row read_direct GB/s ferry_read_direct_gbps dd_read_direct_gbps fio_read_direct_gbps
row small_read ops/s ferry_small_read_ops "" fio_small_read_ops
row small_read_direct ops/s ferry_small_read_direct_ops "" fio_small_read_direct_ops
row open_check GB/s ferry_open_gbps "" ""
cat "$TMP/rows.jsonl"
