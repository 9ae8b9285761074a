#!/usr/bin/env bash
# End-to-end test of `ferry serve` with real curl against a generated tiny model.
#   serve_e2e_test.sh PATH/TO/ferry
# Starts the server on 127.0.0.1 with a kernel-chosen port and always kills it on exit.
set -euo pipefail

FERRY=${1:?usage: serve_e2e_test.sh PATH/TO/ferry}
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
# wait_server NAME: waits (60 s at most) for $SERVER_PID to log "serving NAME on
# http://127.0.0.1:PORT" and answer /health; sets PORT.
wait_server() {
  PORT=""
  for _ in $(seq 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server ($1) exited during start-up"
    PORT=$(sed -n "s|.*serving $1 on http://127\.0\.0\.1:\([0-9]*\).*|\1|p" "$TMP/server.log" | head -n1)
    if [[ -n "$PORT" ]] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then return; fi
    sleep 0.1
  done
  fail "server ($1): no /health within 60 s"
}

"$FERRY" make-model "$TMP/model" >/dev/null || fail "ferry make-model"

# Unknown model directory: clear error, non-zero exit.
if "$FERRY" serve "$TMP/no-such-model" --host 127.0.0.1 --port 0 >"$TMP/bad.log" 2>&1; then
  fail "serve with a missing model dir exited 0"
fi
grep -q "does not exist" "$TMP/bad.log" || fail "no clear error for a missing model dir"
# Bad --kv-transfer-config: exit 2.
set +e
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --kv-transfer-config '{"kv_connector":"X"}' >"$TMP/bad.log" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "bad --kv-transfer-config exited $rc, want 2"
pass "startup errors"

# kv_both runs a bootstrap server: give it a free port, not the default 8998.
BOOT_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
VLLM_MOONCAKE_BOOTSTRAP_PORT=$BOOT_PORT "$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --served-model-name tiny \
  --num-kv-blocks 256 --block-size 16 --max-num-seqs 32 \
  --kv-transfer-config '{"kv_connector":"MooncakeConnector","kv_role":"kv_both"}' \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

wait_server tiny
URL="http://127.0.0.1:$PORT"
pass "server healthy on port $PORT"

post() {  # post PATH BODY OUTFILE [extra curl args] -> prints HTTP status
  local path=$1 body=$2 out=$3
  shift 3
  curl -s -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' "$@" \
    --max-time 60 -d "$body" "$URL$path"
}

# Completions, non-streaming, with X-Request-Id.
code=$(post /v1/completions '{"model":"tiny","prompt":"Hello, world","max_tokens":12,"temperature":0}' \
  "$TMP/c.json" -D "$TMP/c.headers" -H 'X-Request-Id: e2e-req-1')
[[ $code == 200 ]] || fail "completions status $code: $(cat "$TMP/c.json")"
grep -qi '^x-request-id: e2e-req-1' "$TMP/c.headers" || fail "X-Request-Id not echoed"
[[ $(json "$TMP/c.json" 'j["id"]') == "cmpl-e2e-req-1" ]] || fail "request id not used"
[[ $(json "$TMP/c.json" 'j["usage"]["completion_tokens"] > 0') == True ]] || fail "no usage"
[[ $(json "$TMP/c.json" '"kv_transfer_params" in j and j["kv_transfer_params"] is None') == True ]] ||
  fail "kv_transfer_params missing"
COMPLETION_TEXT=$(json "$TMP/c.json" 'repr(j["choices"][0]["text"])')
pass "completion: $COMPLETION_TEXT"

# Same request streamed with usage: same text, SSE framing, usage chunk, [DONE].
curl -sN --max-time 60 -D "$TMP/s.headers" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","prompt":"Hello, world","max_tokens":12,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' \
  "$URL/v1/completions" >"$TMP/s.txt"
grep -qi '^content-type: text/event-stream' "$TMP/s.headers" || fail "stream content type"
[[ $(tail -c 14 "$TMP/s.txt") == $'data: [DONE]' || $(tail -n 2 "$TMP/s.txt" | head -n 1) == 'data: [DONE]' ]] ||
  fail "stream does not end with [DONE]"
python3 - "$TMP/s.txt" "$COMPLETION_TEXT" <<'PY' || fail "streamed completion differs"
import json, sys
events = [e for e in open(sys.argv[1]).read().split("\n\n") if e]
assert all(e.startswith("data: ") for e in events), events
assert events[-1] == "data: [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
assert repr(text) == sys.argv[2], (text, sys.argv[2])
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
PY
pass "streaming completion equals non-streaming, usage chunk present"

# Chat, non-streaming and streaming.
CHAT='{"model":"tiny","messages":[{"role":"user","content":"Say hi"}],"max_tokens":10,"temperature":0'
code=$(post /v1/chat/completions "$CHAT}" "$TMP/chat.json")
[[ $code == 200 ]] || fail "chat status $code: $(cat "$TMP/chat.json")"
[[ $(json "$TMP/chat.json" 'j["choices"][0]["message"]["role"]') == assistant ]] || fail "chat role"
CHAT_TEXT=$(json "$TMP/chat.json" 'repr(j["choices"][0]["message"]["content"])')
curl -sN --max-time 60 -H 'Content-Type: application/json' -d "$CHAT,\"stream\":true}" \
  "$URL/v1/chat/completions" >"$TMP/cs.txt"
python3 - "$TMP/cs.txt" "$CHAT_TEXT" <<'PY' || fail "chat stream"
import json, sys
events = [e for e in open(sys.argv[1]).read().split("\n\n") if e]
assert events[-1] == "data: [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}, chunks[0]
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:])
assert repr(text) == sys.argv[2], (text, sys.argv[2])
assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
PY
pass "chat: $CHAT_TEXT (streamed the same)"

# Errors.
[[ $(post /v1/completions '{"prompt": "x", ' "$TMP/e.json") == 400 ]] || fail "bad JSON not 400"
[[ $(json "$TMP/e.json" 'j["error"]["type"]') == BadRequestError ]] || fail "error shape"
[[ $(post /v1/completions '{"model":"gpt-9","prompt":"x"}' "$TMP/e.json") == 404 ]] || fail "unknown model not 404"
[[ $(post /v1/completions '{"prompt":"x","max_tokens":-1}' "$TMP/e.json") == 400 ]] || fail "negative max_tokens not 400"
python3 -c 'import json; print(json.dumps({"prompt": [1] * 100000}))' >"$TMP/long.json"
[[ $(post /v1/completions "@$TMP/long.json" "$TMP/e.json") == 400 ]] || fail "too long prompt not 400"
[[ $(json "$TMP/e.json" 'j["error"]["param"]') == prompt ]] || fail "too long prompt: $(cat "$TMP/e.json")"
pass "errors: 400 bad JSON / negative max_tokens / long prompt, 404 unknown model"

curl -sf "$URL/v1/models" >"$TMP/m.json" || fail "/v1/models"
[[ $(json "$TMP/m.json" 'j["data"][0]["id"]') == tiny ]] || fail "/v1/models id"
pass "/v1/models"

# 16 concurrent greedy requests equal the same requests one at a time.
for i in $(seq 0 15); do
  printf '{"prompt":"Request number %d: the quick brown fox %s","max_tokens":%d,"temperature":0}' \
    "$i" "$(printf 'x%.0s' $(seq 0 $((i * 3))))" $((8 + i)) >"$TMP/p$i.json"
done
for i in $(seq 0 15); do
  curl -sf --max-time 60 -H 'Content-Type: application/json' -d @"$TMP/p$i.json" \
    "$URL/v1/completions" | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["choices"][0]["text"]))' >"$TMP/seq$i.txt"
done
pids=()
for i in $(seq 0 15); do
  (curl -sf --max-time 60 -H 'Content-Type: application/json' -d @"$TMP/p$i.json" \
    "$URL/v1/completions" | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["choices"][0]["text"]))' >"$TMP/con$i.txt") &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent request failed"; done
for i in $(seq 0 15); do
  cmp -s "$TMP/seq$i.txt" "$TMP/con$i.txt" || fail "request $i: concurrent $(cat "$TMP/con$i.txt") != sequential $(cat "$TMP/seq$i.txt")"
done
pass "16 concurrent greedy requests equal sequential"

# A client that disconnects mid-stream: its request is aborted and its blocks freed.
MAX_LEN=$(json "$TMP/m.json" 'j["data"][0]["max_model_len"]')
# The tiny model is fast: leave early enough that the request is still running (no
# [DONE] received), shortening the wait if a machine finishes it anyway.
for t in 0.15 0.08 0.04 0.02; do
  curl -sN --max-time "$t" -H 'Content-Type: application/json' \
    -d "{\"prompt\":\"Keep talking\",\"max_tokens\":$((MAX_LEN - 16)),\"ignore_eos\":true,\"stream\":true}" \
    "$URL/v1/completions" >"$TMP/cut.txt" 2>/dev/null || true
  grep -q '\[DONE\]' "$TMP/cut.txt" || break
done
grep -q '\[DONE\]' "$TMP/cut.txt" && fail "could not leave before the request finished"
[[ $(head -c 6 "$TMP/cut.txt") == "data: " ]] || fail "mid-stream client got no data"
metric() { curl -sf "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for _ in $(seq 100); do
  [[ $(metric ferry_kv_blocks_used) == 0 && $(metric ferry_num_requests_running) == 0 ]] && break
  sleep 0.1
done
[[ $(metric ferry_kv_blocks_used) == 0 ]] || fail "KV blocks still used after the client left: $(metric ferry_kv_blocks_used)"
[[ $(metric 'ferry_request_success_total{finished_reason="abort"}') -ge 1 ]] || fail "no abort counted"
pass "disconnect mid-stream frees the KV blocks"

# Hostile bodies: 100,000 nested brackets (used to overflow the stack and kill serve), a
# 5 MB prompt (refused before it is tokenized), min_tokens above max_tokens. Each is a 400
# and the server keeps serving.
python3 -c "print('{\"prompt\":' + '[' * 100000 + ']' * 100000 + '}')" >"$TMP/deep.json"
code=$(curl -s -o "$TMP/deep.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --max-time 30 --data-binary @"$TMP/deep.json" "$URL/v1/completions")
[[ $code == 400 ]] || fail "deeply nested body: HTTP $code"
python3 -c "import json; print(json.dumps({'prompt': 'a' * 5000000, 'max_tokens': 1}))" >"$TMP/huge.json"
start=$(date +%s%N)
code=$(curl -s -o "$TMP/huge.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --max-time 30 --data-binary @"$TMP/huge.json" "$URL/v1/completions")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $code == 400 ]] || fail "5 MB prompt: HTTP $code $(head -c 300 "$TMP/huge.out")"
(( ms < 10000 )) || fail "5 MB prompt took $ms ms to refuse"  # a sanitizer build parses slowly
code=$(post /v1/completions '{"prompt":"x","max_tokens":2,"min_tokens":5}' "$TMP/mt.out")
[[ $code == 400 ]] || fail "min_tokens > max_tokens: HTTP $code"
curl -sf "$URL/health" >/dev/null || fail "server died after hostile bodies"
pass "hostile bodies answered 400 (5 MB prompt in $ms ms), server alive"

curl -sf "$URL/metrics" >"$TMP/metrics.txt" || fail "/metrics"
for name in ferry_num_requests_running ferry_num_requests_waiting ferry_kv_blocks_used \
  ferry_kv_blocks_total ferry_prompt_tokens_total ferry_generation_tokens_total \
  ferry_time_to_first_token_seconds_bucket ferry_inter_token_latency_seconds_bucket; do
  grep -q "^$name" "$TMP/metrics.txt" || fail "/metrics lacks $name"
done
[[ $(metric ferry_kv_blocks_total) == 256 ]] || fail "kv blocks total"
pass "/metrics"

# The load generator runs against the server and reports a JSON line.
"$FERRY" bench serve --url "$URL" --concurrency 4 --num-requests 8 --prompt-len 32 \
  --output-len 8 --stream --duration-limit 60 >"$TMP/bench.txt" || fail "bench serve: $(cat "$TMP/bench.txt")"
tail -n 1 "$TMP/bench.txt" >"$TMP/bench.json"
[[ $(json "$TMP/bench.json" 'j["ok"] == 8 and j["ttft_ms_p50"] > 0 and j["output_tok_per_s"] > 0') == True ]] ||
  fail "bench serve report: $(cat "$TMP/bench.txt")"
pass "bench serve: $(json "$TMP/bench.json" '"%.1f req/s, %.1f tok/s, TTFT p50 %.2f ms" % (j["req_per_s"], j["output_tok_per_s"], j["ttft_ms_p50"])')"

# A greedy answer to compare with the bfloat16-storage server below.
curl -sf -H 'Content-Type: application/json' -d '{"model":"tiny","prompt":"Hello there","max_tokens":12,"temperature":0}' \
  "$URL/v1/completions" >"$TMP/f32.json" || fail "greedy completion"

# Graceful shutdown on SIGTERM.
kill -TERM "$SERVER_PID"
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then fail "server ignored SIGTERM"; fi
wait "$SERVER_PID" || fail "server exited non-zero after SIGTERM"
SERVER_PID=""
pass "SIGTERM shuts down cleanly"

# Flags copied from `vllm serve`: -tp > 1 and unknown flags are clear errors; the rest are
# accepted with a note, and the API key guards /v1/* but not /health or /metrics.
set +e
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 -tp 2 >"$TMP/bad.log" 2>&1
rc=$?
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --no-such-flag >"$TMP/bad2.log" 2>&1
rc2=$?
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --gpu-memory-utilization 1.5 >"$TMP/bad3.log" 2>&1
rc3=$?
set -e
[[ $rc -ne 0 ]] && grep -q "no tensor parallelism yet; use -tp 1" "$TMP/bad.log" || fail "-tp 2: rc $rc $(cat "$TMP/bad.log")"
[[ $rc2 -ne 0 ]] && grep -q -- "--no-such-flag" "$TMP/bad2.log" || fail "unknown flag: rc $rc2 $(cat "$TMP/bad2.log")"
[[ $rc3 -ne 0 ]] && grep -q -- "--gpu-memory-utilization must be in (0, 1]" "$TMP/bad3.log" || fail "bad --gpu-memory-utilization: $(cat "$TMP/bad3.log")"
VLLM_API_KEY=sk-e2e "$FERRY" serve "$TMP/model" --host 127.0.0.1 --port 0 --served-model-name tiny \
  --tensor-parallel-size 1 --gpu-memory-utilization 0.5 --trust-remote-code --seed 3 \
  --enable-prefix-caching --disable-log-requests --uvicorn-log-level info \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_server tiny
URL="http://127.0.0.1:$PORT"
for note in "--gpu-memory-utilization 0.5" "--trust-remote-code" "--seed 3" "--enable-prefix-caching" \
  "--disable-log-requests" "--uvicorn-log-level info" "API key set"; do
  grep -q -- "$note" "$TMP/server.log" || fail "no start-up note for $note"
done
grep -q -- "--kv-cache-memory-mb: 512 MiB" "$TMP/server.log" || fail "--gpu-memory-utilization 0.5 did not halve the KV budget"
code=$(post /v1/completions '{"prompt":"Hello","max_tokens":4}' "$TMP/k.json")
[[ $code == 401 ]] || fail "no API key: HTTP $code"
[[ $(json "$TMP/k.json" 'j["error"]["code"]') == 401 ]] || fail "401 body: $(cat "$TMP/k.json")"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models") == 401 ]] || fail "/v1/models without the key"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics") == 200 ]] || fail "/metrics must stay open"
KEY=(-H 'Authorization: Bearer sk-e2e')
# --seed: an unseeded sampled request is reproducible.
body='{"prompt":"Hello","max_tokens":8,"temperature":1.0}'
[[ $(post /v1/completions "$body" "$TMP/s1.json" "${KEY[@]}") == 200 ]] || fail "with the key: $(cat "$TMP/s1.json")"
post /v1/completions "$body" "$TMP/s2.json" "${KEY[@]}" >/dev/null
[[ $(json "$TMP/s1.json" 'j["choices"][0]["text"]') == "$(json "$TMP/s2.json" 'j["choices"][0]["text"]')" ]] ||
  fail "--seed: two unseeded requests differ"
pass "vllm serve flags: -tp 2 and unknown flags refused, the others noted; API key 401/200, /health and /metrics open; --seed"

# Scoring on the real model: generate with logprobs, then score prompt + output (as token
# ids, from return_tokens_as_token_ids) with echo and max_tokens 0; the output tokens'
# logprobs must be the ones reported while generating.
PROMPT_IDS='[72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100]'
post /v1/completions "{\"prompt\":$PROMPT_IDS,\"max_tokens\":6,\"temperature\":0.8,\"seed\":1,\"logprobs\":2,\"ignore_eos\":true,\"return_tokens_as_token_ids\":true}" \
  "$TMP/gen.json" "${KEY[@]}" >/dev/null
python3 - "$TMP/gen.json" "$PROMPT_IDS" >"$TMP/score_body.json" <<'PY' || fail "generation: $(cat "$TMP/gen.json")"
import json, sys
gen = json.load(open(sys.argv[1]))["choices"][0]["logprobs"]["tokens"]
ids = json.loads(sys.argv[2]) + [int(t.split(":")[1]) for t in gen]
print(json.dumps({"prompt": ids, "max_tokens": 0, "echo": True, "logprobs": 2,
                  "return_tokens_as_token_ids": True}))
PY
code=$(post /v1/completions "$(cat "$TMP/score_body.json")" "$TMP/score.json" "${KEY[@]}")
[[ $code == 200 ]] || fail "scoring: HTTP $code $(cat "$TMP/score.json")"
python3 - "$TMP/gen.json" "$TMP/score.json" <<'PY' || fail "scoring does not match generation: $(cat "$TMP/gen.json") $(cat "$TMP/score.json")"
import json, sys
g = json.load(open(sys.argv[1]))["choices"][0]["logprobs"]
s = json.load(open(sys.argv[2]))["choices"][0]["logprobs"]
assert s["token_logprobs"][0] is None and s["top_logprobs"][0] is None
assert len(s["tokens"]) == 12 + len(g["tokens"]) == 18, s["tokens"]
assert s["tokens"][12:] == g["tokens"], (s["tokens"], g["tokens"])
for a, b in zip(s["token_logprobs"][12:], g["token_logprobs"]):
    assert abs(a - b) < 1e-4, (a, b)
for a, b in zip(s["top_logprobs"][12:], g["top_logprobs"]):
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a), (a, b)
assert all(lp <= 0 for lp in s["token_logprobs"][1:])
PY
pass "echo + max_tokens 0 + logprobs scores a text with the logprobs of generating it"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "server (vllm flags) exited non-zero after SIGTERM"
SERVER_PID=""

# MODEL as a repo id, found in a Hugging Face hub cache laid out as huggingface-cli writes it
# (refs/main -> snapshots/<rev>/ whose files link into blobs/); the name is served as given.
HUB="$TMP/hub/models--ferry-test--tiny"
mkdir -p "$HUB/refs" "$HUB/blobs" "$HUB/snapshots/0a1b2c"
echo -n 0a1b2c >"$HUB/refs/main"
for f in "$TMP/model"/*; do
  cp "$f" "$HUB/blobs/$(basename "$f").blob"
  ln -s "../../blobs/$(basename "$f").blob" "$HUB/snapshots/0a1b2c/$(basename "$f")"
done
if HF_HUB_CACHE="$TMP/hub" "$FERRY" serve ferry-test/absent --host 127.0.0.1 --port 0 >"$TMP/bad.log" 2>&1; then
  fail "serve of a repo id not in the cache exited 0"
fi
grep -q "huggingface-cli download ferry-test/absent" "$TMP/bad.log" || fail "no clear error for an uncached repo id: $(cat "$TMP/bad.log")"
HF_HUB_CACHE="$TMP/hub" "$FERRY" serve ferry-test/tiny --host 127.0.0.1 --port 0 --dtype bfloat16 \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_server ferry-test/tiny
curl -sf "http://127.0.0.1:$PORT/v1/models" >"$TMP/models.json" || fail "/v1/models (repo id)"
[[ $(json "$TMP/models.json" 'j["data"][0]["id"]') == ferry-test/tiny ]] || fail "served name: $(cat "$TMP/models.json")"
code=$(curl -s -o "$TMP/hub.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"model":"ferry-test/tiny","prompt":"Hello","max_tokens":4}' "http://127.0.0.1:$PORT/v1/completions")
[[ $code == 200 ]] || fail "completion on the cached model: HTTP $code $(cat "$TMP/hub.out")"
# make-model weights are BF16, so bfloat16 storage must give the float32 server's answer.
grep -q "weights stored as bfloat16" "$TMP/server.log" || fail "--dtype bfloat16 not applied"
curl -sf -H 'Content-Type: application/json' -d '{"model":"ferry-test/tiny","prompt":"Hello there","max_tokens":12,"temperature":0}' \
  "http://127.0.0.1:$PORT/v1/completions" >"$TMP/bf16.json" || fail "greedy completion (bfloat16)"
[[ $(json "$TMP/bf16.json" 'j["choices"][0]["text"]') == "$(json "$TMP/f32.json" 'j["choices"][0]["text"]')" ]] ||
  fail "bfloat16 storage answered $(cat "$TMP/bf16.json"), float32 $(cat "$TMP/f32.json")"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "server (repo id) exited non-zero after SIGTERM"
SERVER_PID=""
pass "MODEL as a repo id from the Hugging Face cache, served under that name; --dtype bfloat16 gives the float32 answer"
echo "serve e2e: all passed"
