#!/usr/bin/env bash
# Prefix reuse through the KV pool, measured on a request trace: two prefill instances and
# one decode instance behind `ferry proxy`, the same multi-turn trace replayed twice:
#   baseline: per-instance prefix caches only (MooncakeConnector on each instance)
#   pool:     the prefills also share the pool (MultiConnector: MooncakeConnector +
#             MooncakeStoreConnector, one `ferry master`, each prefill lends DRAM)
# and a table of hit rates, TTFT p50/p99 and prefill tokens computed, side by side.
#
#   bench/trace_pool_bench.sh [PATH/TO/ferry] [SESSIONS] [TURNS]
#
# The model is a generated Qwen2 (8 layers, hidden 512) so that prefill costs real compute
# on the CPU; the proxy sends a session's turns to either prefill, so without the pool a
# turn finds its history only on the instance that served the previous one.
set -euo pipefail

FERRY=$(readlink -f "${1:-build/bin/ferry}")
SESSIONS=${2:-12}
TURNS=${3:-4}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [[ -n ${KEEP_TMP:-} ]] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() {  # wait_url URL PATTERN PID NAME
  for _ in $(seq 600); do
    kill -0 "$3" 2>/dev/null || { echo "$4 exited:"; tail -20 "$TMP/$4.log"; exit 1; }
    if [[ -z $2 ]]; then
      curl -sf "$1" >/dev/null 2>&1 && return 0
    else
      curl -sf "$1" 2>/dev/null | grep -q "$2" && return 0
    fi
    sleep 0.1
  done
  echo "$4 not ready"; tail -20 "$TMP/$4.log"; exit 1
}

"$FERRY" make-model "$TMP/model" --layers 8 --hidden 512 --heads 8 --kv-heads 4 \
  --intermediate 1024 --max-position 4096 >/dev/null
"$FERRY" bench make-trace --sessions "$SESSIONS" --turns "$TURNS" --system-prompt-blocks 2 \
  --turn-input-blocks 2 --output-length 64 --rate 1.5 --think-time-ms 2500 --seed 7 \
  --output "$TMP/trace.jsonl"
SERVE=(serve "$TMP/model" --host 127.0.0.1 --served-model-name bench --block-size 16
  --num-kv-blocks 1024 --max-num-seqs 16 --threads 1)

run() {  # run NAME WITH_POOL
  local name=$1 pool=$2 procs_before=${#PIDS[@]}
  local master_port; master_port=$(free_port)
  cat >"$TMP/mooncake.json" <<EOF
{"local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
 "master_server_address": "127.0.0.1:$master_port", "protocol": "tcp", "device_name": "",
 "global_segment_size": "256MB", "local_buffer_size": "16MB"}
EOF
  if [[ $pool == 1 ]]; then
    "$FERRY" master --rpc_address 127.0.0.1 --rpc_port "$master_port" --metrics_port 0 \
      --enable_http_metadata_server false >"$TMP/master-$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$TMP/master-$name.log" && break; sleep 0.1; done
  fi
  local p2p='{"kv_connector":"MooncakeConnector","kv_connector_extra_config":{"mooncake_protocol":"tcp","num_workers":2}}'
  local store='{"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both"}'
  local pcfg="{\"kv_connector\":\"MooncakeConnector\",\"kv_role\":\"kv_producer\",\"kv_connector_extra_config\":{\"mooncake_protocol\":\"tcp\",\"num_workers\":2}}"
  if [[ $pool == 1 ]]; then
    pcfg="{\"kv_connector\":\"MultiConnector\",\"kv_role\":\"kv_producer\",\"kv_connector_extra_config\":{\"connectors\":[$p2p,$store]}}"
  fi
  local dcfg='{"kv_connector":"MooncakeConnector","kv_role":"kv_consumer","kv_connector_extra_config":{"mooncake_protocol":"tcp"}}'
  local urls=() boots=()
  for i in 1 2; do
    local port boot; port=$(free_port); boot=$(free_port)
    MOONCAKE_CONFIG_PATH="$TMP/mooncake.json" VLLM_MOONCAKE_BOOTSTRAP_PORT=$boot \
      "$FERRY" "${SERVE[@]}" --port "$port" --kv-transfer-config "$pcfg" >"$TMP/p$i.log" 2>&1 &
    PIDS+=($!)
    wait_url "http://127.0.0.1:$port/health" "" $! "p$i"
    urls+=("http://127.0.0.1:$port") boots+=("$boot")
  done
  local dport; dport=$(free_port)
  VLLM_MOONCAKE_BOOTSTRAP_PORT=$(free_port) "$FERRY" "${SERVE[@]}" --port "$dport" \
    --kv-transfer-config "$dcfg" >"$TMP/d.log" 2>&1 &
  PIDS+=($!)
  wait_url "http://127.0.0.1:$dport/health" "" $! d
  local pport; pport=$(free_port)
  "$FERRY" proxy --host 127.0.0.1 --port "$pport" --health-interval 0.2 \
    --prefill "${urls[0]}" "${boots[0]}" --prefill "${urls[1]}" "${boots[1]}" \
    --decode "http://127.0.0.1:$dport" >"$TMP/proxy.log" 2>&1 &
  PIDS+=($!)
  wait_url "http://127.0.0.1:$pport/health" '"mode":"disaggregated"' $! proxy
  "$FERRY" bench trace --trace "$TMP/trace.jsonl" --url "http://127.0.0.1:$pport" \
    --model bench --trace-block-tokens 512 --length-scale 0.125 --max-prompt-tokens 2000 \
    --ttft-slo-ms 2000 --tbt-slo-ms 200 --metrics-url "${urls[0]}" --metrics-url "${urls[1]}" \
    >"$TMP/$name.txt" || echo "[$name] bench trace: some requests failed (see the table)"
  sed -n '1,30p' "$TMP/$name.txt" | grep -v '^{' | sed "s/^/[$name] /"
  tail -n 1 "$TMP/$name.txt" >"$TMP/$name.json"
  for pid in "${PIDS[@]:$procs_before}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:$procs_before}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=("${PIDS[@]:0:$procs_before}")
}

run baseline 0
run pool 1
python3 - "$TMP/baseline.json" "$TMP/pool.json" <<'PY'
import json, sys
b, p = (json.load(open(f)) for f in sys.argv[1:3])
rows = [("requests ok", "ok", "{:.0f}"), ("local prefix hit rate", "local_hit_rate", "{:.1%}"),
        ("pool hit rate", "pool_hit_rate", "{:.1%}"), ("total hit rate", "total_hit_rate", "{:.1%}"),
        ("prefill tokens computed", "prefill_tokens_computed", "{:.0f}"),
        ("TTFT p50 (ms)", "ttft_ms_p50", "{:.0f}"), ("TTFT p99 (ms)", "ttft_ms_p99", "{:.0f}"),
        ("TBT p50 (ms)", "tbt_ms_p50", "{:.1f}"), ("SLO attainment", "slo_attainment", "{:.1%}")]
print("\n| trace: %d requests, 2 prefills + 1 decode | per-instance cache | with the pool | ratio |" % b["requests"])
print("|---|---:|---:|---:|")
for label, key, fmt in rows:
    bv, pv = b.get(key, 0) or 0, p.get(key, 0) or 0
    ratio = "%.2fx" % (pv / bv) if bv else "-"
    print("| %s | %s | %s | %s |" % (label, fmt.format(bv), fmt.format(pv), ratio))
print(json.dumps({"bench": "trace_pool", "baseline": b, "pool": p}))
PY
