#!/usr/bin/env bash
# End-to-end test of `ferry bench make-trace` and `ferry bench trace` against a real
# `ferry serve` with a generated tiny model:
#   bench_trace_e2e_test.sh PATH/TO/ferry
# A multi-turn trace replayed at a small length scale must succeed whole, the server's
# prompt-token counter must match what the client sent, and the prefix cache must hit
# (turns repeat their history, sessions share a system prompt). Malformed traces and an
# unreachable server must fail cleanly. Starts the server on a kernel-chosen 127.0.0.1
# port and always kills it on exit.
set -euo pipefail

FERRY=${1:?usage: bench_trace_e2e_test.sh PATH/TO/ferry}
TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- server log (tail) ---" >&2
  tail -n 40 "$TMP/server.log" >&2 || true
  exit 1
}
pass() { echo "ok: $*"; }
# json FILE PYTHON_EXPR: evaluates EXPR with `j` bound to the parsed file; prints the result.
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# make-trace: deterministic, sorted, the documented shape.
TRACE_FLAGS=(--sessions 4 --turns 3 --system-prompt-blocks 2 --turn-input-blocks 2
  --output-length 128 --rate 4 --think-time-ms 300 --seed 3)
"$FERRY" bench make-trace "${TRACE_FLAGS[@]}" --output "$TMP/trace.jsonl" 2>/dev/null ||
  fail "make-trace exited non-zero"
"$FERRY" bench make-trace "${TRACE_FLAGS[@]}" >"$TMP/trace2.jsonl" || fail "make-trace to stdout"
cmp -s "$TMP/trace.jsonl" "$TMP/trace2.jsonl" || fail "make-trace is not deterministic"
python3 - "$TMP/trace.jsonl" <<'PY' || fail "make-trace output"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 12, len(lines)
ts = [l["timestamp"] for l in lines]
assert ts == sorted(ts), ts
for l in lines:
    assert set(l) == {"timestamp", "input_length", "output_length", "hash_ids"}, l
    assert l["hash_ids"][:2] == [0, 1], l  # the shared system prompt
    assert len(l["hash_ids"]) in (4, 7, 10), l
    assert (len(l["hash_ids"]) - 1) * 512 < l["input_length"] <= len(l["hash_ids"]) * 512, l
PY
pass "make-trace: 12 requests, deterministic, system prompt shared"

"$FERRY" make-model "$TMP/model" >/dev/null || fail "ferry make-model"
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --served-model-name tiny \
  --num-kv-blocks 512 --block-size 16 --max-num-seqs 16 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 600); do
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited during start-up"
  PORT=$(sed -n 's|.*serving tiny on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$TMP/server.log" | head -n1)
  if [[ -n "$PORT" ]] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then break; fi
  PORT=""
  sleep 0.1
done
[[ -n "$PORT" ]] || fail "server: no /health within 60 s"
URL="http://127.0.0.1:$PORT"
pass "server healthy on port $PORT"

# Block 512 * 1/16 = 32 tokens (two server blocks of 16); the longest prompt is 320 tokens.
"$FERRY" bench trace --trace "$TMP/trace.jsonl" --url "$URL" --model tiny --length-scale 0.0625 \
  --max-prompt-tokens 1024 --metrics-url "$URL" --duration-limit 60 >"$TMP/bench.txt" ||
  fail "bench trace exited non-zero: $(cat "$TMP/bench.txt")"
tail -n 1 "$TMP/bench.txt" >"$TMP/bench.json"
cat "$TMP/bench.txt"
[[ $(json "$TMP/bench.json" 'j["requests"] == 12 and j["ok"] == 12 and j["failed"] == 0') == True ]] ||
  fail "not every request succeeded: $(cat "$TMP/bench.json")"
[[ $(json "$TMP/bench.json" 'j["block_tokens"] == 32 and j["output_tokens"] == 12 * 8') == True ]] ||
  fail "lengths not scaled as documented: $(cat "$TMP/bench.json")"
[[ $(json "$TMP/bench.json" 'j["ttft_ms_p50"] > 0 and j["tbt_ms_p50"] > 0 and j["e2e_ms_p99"] >= j["ttft_ms_p50"]') == True ]] ||
  fail "latencies: $(cat "$TMP/bench.json")"
[[ $(json "$TMP/bench.json" '0 <= j["slo_attainment"] <= 1') == True ]] || fail "slo_attainment"
# The server admitted exactly the prompt tokens the client sent.
[[ $(json "$TMP/bench.json" 'j["server_prompt_tokens"] == j["prompt_tokens"]') == True ]] ||
  fail "server prompt tokens != sent: $(cat "$TMP/bench.json")"
[[ $(json "$TMP/bench.json" 'j["local_hit_rate"] > 0.2 and j["pool_hit_rate"] == 0 and abs(j["total_hit_rate"] - j["local_hit_rate"]) < 1e-9') == True ]] ||
  fail "no prefix cache hits for a multi-turn trace: $(cat "$TMP/bench.json")"
[[ $(json "$TMP/bench.json" 'j["prefill_tokens_computed"] == j["server_prompt_tokens"] - j["local_hit_tokens"]') == True ]] ||
  fail "prefill tokens computed: $(cat "$TMP/bench.json")"
pass "bench trace: $(json "$TMP/bench.json" '"12/12 ok, TTFT p50 %.1f ms, TBT p50 %.2f ms, local hit rate %.2f" % (j["ttft_ms_p50"], j["tbt_ms_p50"], j["local_hit_rate"])')"

# An impossible SLO is attained by no request.
"$FERRY" bench trace --trace "$TMP/trace.jsonl" --url "$URL" --length-scale 0.0625 \
  --max-requests 3 --ttft-slo-ms 0 --duration-limit 60 >"$TMP/slo.txt" || fail "bench trace (slo)"
[[ $(tail -n 1 "$TMP/slo.txt" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["requests"] == 3 and j["slo_attainment"] == 0 and "local_hit_rate" not in j)') == True ]] ||
  fail "--max-requests / --ttft-slo-ms 0: $(tail -n 1 "$TMP/slo.txt")"
pass "--max-requests 3, --ttft-slo-ms 0 gives attainment 0, no --metrics-url no hit rates"

# --duration-limit bounds the run: stretched 100x the trace spans minutes; after 2 s nothing
# more is sent, the rest fails as not sent, and the command returns promptly.
start=$(date +%s)
set +e
"$FERRY" bench trace --trace "$TMP/trace.jsonl" --url "$URL" --length-scale 0.0625 \
  --time-scale 100 --duration-limit 2 >"$TMP/limit.txt" 2>&1
rc=$?
set -e
took=$(($(date +%s) - start))
[[ $rc -eq 1 ]] || fail "--duration-limit run exited $rc, want 1: $(cat "$TMP/limit.txt")"
(( took <= 10 )) || fail "--duration-limit 2 took $took s"
[[ $(tail -n 1 "$TMP/limit.txt" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["ok"] >= 1 and j["failed"] >= 1 and j["ok"] + j["failed"] == 12 and "duration-limit" in j["first_error"])') == True ]] ||
  fail "--duration-limit report: $(tail -n 1 "$TMP/limit.txt")"
pass "--duration-limit 2 stops a 100x stretched replay in $took s"

# A malformed line: exit 2 and an error naming the line.
{ head -n 2 "$TMP/trace.jsonl"; echo '{"timestamp": 5, "input_length": "many"}'; } >"$TMP/bad.jsonl"
set +e
"$FERRY" bench trace --trace "$TMP/bad.jsonl" --url "$URL" >"$TMP/bad.out" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "malformed trace exited $rc, want 2"
grep -q 'trace line 3: "input_length" must be an integer' "$TMP/bad.out" ||
  fail "no clear error for a malformed line: $(cat "$TMP/bad.out")"
pass "malformed trace line: exit 2, names line 3"

# A server that is not there: every request fails, exit 1, quickly.
DEAD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
set +e
timeout 30 "$FERRY" bench trace --trace "$TMP/trace.jsonl" --url "http://127.0.0.1:$DEAD_PORT" \
  --max-requests 2 --duration-limit 20 >"$TMP/dead.txt" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "unreachable server: exit $rc, want 1: $(cat "$TMP/dead.txt")"
[[ $(tail -n 1 "$TMP/dead.txt" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["failed"] == 2 and j["ok"] == 0)') == True ]] ||
  fail "unreachable server report: $(tail -n 1 "$TMP/dead.txt")"
pass "unreachable server: all failed, exit 1"
echo "bench trace e2e: all passed"
