#!/usr/bin/env bash
# Disaggregated serving versus one colocated instance, measured in the same run on this
# machine with `ferry bench serve`: throughput, time to first token, inter-token latency,
# and the KV transfer time per request as a share of the time to first token.
#
#   bench/disagg_bench.sh [build-dir]
#   env: LAYERS=8 HIDDEN=512 CONCURRENCY=8 REQUESTS=48 PROMPT=256 OUTPUT=32 THREADS=1
#
# All instances run on 127.0.0.1 (KV over shm). On a 2-core machine prefill and decode
# share the same cores, so disaggregation cannot win on throughput here; the figures show
# what the KV hand-off costs. Prints a human table, then one JSON line per setup.
set -euo pipefail

BUILD=${1:-build}
FERRY=$(readlink -f "$BUILD/bin/ferry")
LAYERS=${LAYERS:-8} HIDDEN=${HIDDEN:-512} THREADS=${THREADS:-1}
CONCURRENCY=${CONCURRENCY:-8} REQUESTS=${REQUESTS:-48} PROMPT=${PROMPT:-256} OUTPUT=${OUTPUT:-32}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_healthy() {
  for _ in $(seq 600); do curl -sf "$1/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not healthy: $1" >&2
  exit 1
}
metric() { curl -sf "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
bench() {
  "$FERRY" bench serve --url "$1" --concurrency "$CONCURRENCY" --num-requests "$REQUESTS" \
    --prompt-len "$PROMPT" --output-len "$OUTPUT" --stream --duration-limit 300 | tail -n 1
}

"$FERRY" make-model "$TMP/model" --layers "$LAYERS" --hidden "$HIDDEN" --heads 8 --kv-heads 2 \
  --intermediate $((HIDDEN * 2)) --vocab 512 >/dev/null
ARGS=(--served-model-name bench --threads "$THREADS" --max-num-seqs 64 --kv-cache-memory-mb 512)

echo "== colocated: one ferry serve" >&2
PORT=$(free_port)
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port "$PORT" "${ARGS[@]}" >"$TMP/colo.log" 2>&1 &
COLO=$!
PIDS+=("$COLO")
wait_healthy "http://127.0.0.1:$PORT"
bench "http://127.0.0.1:$PORT" >"$TMP/colo.json"
kill -TERM "$COLO"
wait "$COLO" 2>/dev/null || true

echo "== disaggregated: prefill + decode + proxy" >&2
BOOT=$(free_port) P=$(free_port) D=$(free_port) X=$(free_port)
VLLM_MOONCAKE_BOOTSTRAP_PORT=$BOOT "$FERRY" serve "$TMP/model" --host 127.0.0.1 --port "$P" "${ARGS[@]}" \
  --kv-transfer-config '{"kv_connector":"MooncakeConnector","kv_role":"kv_producer","kv_connector_extra_config":{"mooncake_protocol":"auto"}}' \
  >"$TMP/p.log" 2>&1 &
PIDS+=($!)
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port "$D" "${ARGS[@]}" \
  --kv-transfer-config '{"kv_connector":"MooncakeConnector","kv_role":"kv_consumer","kv_connector_extra_config":{"mooncake_protocol":"auto"}}' \
  >"$TMP/d.log" 2>&1 &
PIDS+=($!)
wait_healthy "http://127.0.0.1:$P"
wait_healthy "http://127.0.0.1:$D"
"$FERRY" proxy --port "$X" --prefill "http://127.0.0.1:$P" "$BOOT" --decode "http://127.0.0.1:$D" \
  >"$TMP/x.log" 2>&1 &
PIDS+=($!)
wait_healthy "http://127.0.0.1:$X"
bench "http://127.0.0.1:$X" >"$TMP/pd.json"
XFER_SUM=$(metric "http://127.0.0.1:$P" ferry_kv_transfer_seconds_sum)
XFER_N=$(metric "http://127.0.0.1:$P" ferry_kv_transfer_seconds_count)
BYTES=$(metric "http://127.0.0.1:$P" ferry_kv_bytes_sent_total)
RECOMPUTED=$(metric "http://127.0.0.1:$D" ferry_kv_recomputed_total)

python3 - "$TMP/colo.json" "$TMP/pd.json" "$XFER_SUM" "$XFER_N" "$BYTES" "$RECOMPUTED" <<'PY'
import json, sys
colo, pd = (json.load(open(p)) for p in sys.argv[1:3])
xfer_sum, xfer_n, kv_bytes, recomputed = (float(x or 0) for x in sys.argv[3:7])
xfer_ms = 1e3 * xfer_sum / xfer_n if xfer_n else 0.0
print("%-14s %9s %11s %10s %10s %10s %10s" % ("setup", "req/s", "out tok/s", "TTFT p50", "TTFT p90", "ITL p50", "ITL p99"))
for name, r in (("colocated", colo), ("disaggregated", pd)):
    print("%-14s %9.2f %11.1f %8.1fms %8.1fms %8.2fms %8.2fms" % (name, r["req_per_s"], r["output_tok_per_s"],
          r["ttft_ms_p50"], r["ttft_ms_p90"], r["itl_ms_p50"], r["itl_ms_p99"]))
share = xfer_ms / pd["ttft_ms_p50"] if pd["ttft_ms_p50"] else 0.0
print("disaggregated/colocated: throughput %.2fx, TTFT p50 %.2fx" % (
    pd["output_tok_per_s"] / colo["output_tok_per_s"], pd["ttft_ms_p50"] / colo["ttft_ms_p50"]))
print("KV transfer: %.0f transfers, %.1f KiB each, %.3f ms each = %.1f%% of the disaggregated TTFT p50; %d recomputed" % (
    xfer_n, kv_bytes / max(xfer_n, 1) / 1024, xfer_ms, 100 * share, recomputed))
print(json.dumps(dict(colo, setup="colocated")))
print(json.dumps(dict(pd, setup="disaggregated", kv_transfers=xfer_n, kv_bytes=kv_bytes,
                      kv_transfer_ms_mean=xfer_ms, kv_share_of_ttft_p50=share, recomputed=recomputed)))
PY
