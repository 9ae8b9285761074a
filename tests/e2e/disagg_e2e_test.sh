#!/usr/bin/env bash
# End-to-end disaggregated serving with real processes and real curl:
#   ferry serve (kv_producer) + ferry serve (kv_consumer) + ferry proxy
# Greedy output through the proxy must equal a single colocated instance.
#
#   disagg_e2e_test.sh PATH/TO/ferry netns   # P and D on their own test hosts (network
#                                            # namespaces + veth), KV over tcp
#   disagg_e2e_test.sh PATH/TO/ferry local   # everything on 127.0.0.1, KV over shm
#   disagg_e2e_test.sh PATH/TO/ferry local both   # both instances kv_both (each has its
#                                                 # own bootstrap server), same checks
#   disagg_e2e_test.sh PATH/TO/ferry netns split secret   # the deployment shares a secret
#                                                 # (FERRY_KV_SECRET); outsiders are refused
#
# netns mode falls back to 127.0.0.1 (still over tcp) where namespaces are refused.
# Everything started here is killed, and every namespace removed, on exit.
set -euo pipefail

FERRY=$(readlink -f "${1:?usage: disagg_e2e_test.sh PATH/TO/ferry netns|local}")
MODE=${2:-local}
ROLES=${3:-split}  # split: kv_producer + kv_consumer; both: kv_both + kv_both
[[ $ROLES == split || $ROLES == both ]] || { echo "roles must be split or both" >&2; exit 2; }
AUTH=${4:-open}  # open: no secret; secret: every instance and the proxy share FERRY_KV_SECRET
[[ $AUTH == open || $AUTH == secret ]] || { echo "auth must be open or secret" >&2; exit 2; }
SECRET_ENV=()
TMP=$(mktemp -d)
if [[ $AUTH == secret ]]; then
  # The deployment also has an OpenAI API key (VLLM_API_KEY for both instances and the
  # proxy): every curl below sends it through a .curlrc; `curl -q` (no .curlrc) does not.
  API_KEY="sk-e2e-$RANDOM"
  SECRET_ENV=(FERRY_KV_SECRET="e2e-$RANDOM-$RANDOM" VLLM_API_KEY="$API_KEY")
  mkdir -p "$TMP/curlhome"
  echo "header = \"Authorization: Bearer $API_KEY\"" >"$TMP/curlhome/.curlrc"
  export CURL_HOME="$TMP/curlhome"
fi
PIDS=()
NAMESPACES=()
VETH=""

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [[ -n "$VETH" ]] && ip link del "$VETH" 2>/dev/null || true
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$TMP"/*.log; do
    echo "--- $(basename "$log") (tail) ---" >&2
    tail -n 25 "$log" >&2 || true
  done
  exit 1
}
pass() { echo "ok: $*"; }

# ---- test hosts -------------------------------------------------------------------------
P_NS="" D_NS="" P_IP=127.0.0.1 D_IP=127.0.0.1 PROTOCOL=shm
if [[ $MODE == netns ]]; then
  PROTOCOL=tcp
  tag=$$
  net="10.213.$((tag % 250)).0"
  if ip netns add "fe2e-p-$tag" 2>/dev/null; then
    NAMESPACES+=("fe2e-p-$tag")
    if ip netns add "fe2e-d-$tag" && ip link add "fvp$tag" type veth peer name "fvd$tag"; then
      NAMESPACES+=("fe2e-d-$tag")
      VETH="fvp$tag"
      ip link set "fvp$tag" netns "fe2e-p-$tag"
      ip link set "fvd$tag" netns "fe2e-d-$tag"
      P_IP=${net%.0}.1
      D_IP=${net%.0}.2
      ip -n "fe2e-p-$tag" addr add "$P_IP/24" dev "fvp$tag"
      ip -n "fe2e-d-$tag" addr add "$D_IP/24" dev "fvd$tag"
      for ns in "fe2e-p-$tag" "fe2e-d-$tag"; do ip -n "$ns" link set lo up; done
      ip -n "fe2e-p-$tag" link set "fvp$tag" up
      ip -n "fe2e-d-$tag" link set "fvd$tag" up
      P_NS="fe2e-p-$tag"
      D_NS="fe2e-d-$tag"
      VETH=""  # deleted with its namespace
    fi
  fi
  if [[ -z "$P_NS" ]]; then
    echo "note: network namespaces refused here; prefill and decode share 127.0.0.1 (tcp)"
  else
    echo "note: prefill on $P_IP ($P_NS), decode and proxy on $D_IP ($D_NS), KV over tcp"
  fi
fi
in_ns() {  # in_ns NS CMD... : runs CMD in namespace NS ("" = here)
  local ns=$1
  shift
  if [[ -n "$ns" ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}
# spawn_in NS CMD... &: like in_ns, but the background job *becomes* CMD (exec), so that
# $! is the server's own pid and signals reach it.
spawn_in() {
  local ns=$1
  shift
  if [[ -n "$ns" ]]; then exec ip netns exec "$ns" "$@"; else exec "$@"; fi
}
# Everything the client does happens on the decode host (the proxy lives there).
ccurl() { in_ns "$D_NS" curl "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthy() {  # wait_healthy NS URL PID NAME (a proxy: until it sees every instance)
  for _ in $(seq 600); do
    kill -0 "$3" 2>/dev/null || fail "$4 exited during start-up"
    if [[ $4 == proxy ]]; then
      in_ns "$1" curl -sf "$2/health" 2>/dev/null | grep -q '"mode":"disaggregated"' && return 0
    else
      in_ns "$1" curl -sf "$2/health" >/dev/null 2>&1 && return 0
    fi
    sleep 0.1
  done
  fail "$4 not healthy within 60 s"
}

"$FERRY" make-model "$TMP/model" >/dev/null || fail "ferry make-model"
SERVE_ARGS=(--served-model-name tiny --num-kv-blocks 512 --block-size 16 --max-num-seqs 64)

# ---- reference: one colocated instance --------------------------------------------------
REF_PORT=$(free_port)
"$FERRY" serve "$TMP/model" --host 127.0.0.1 --port "$REF_PORT" "${SERVE_ARGS[@]}" \
  >"$TMP/ref.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
wait_healthy "" "http://127.0.0.1:$REF_PORT" "$REF_PID" "reference server"

# Requests: id, path, body. Prompts are sized against 16-token blocks.
LONG="The river carried the ferry across the wide brown water while the passengers watched the far bank grow slowly larger and the gulls circled overhead calling"
declare -A PATHS BODIES
add() { PATHS[$1]=$2; BODIES[$1]=$3; }
add short /v1/completions '{"model":"tiny","prompt":"Hi","max_tokens":8,"temperature":0}'
add multi /v1/completions "{\"model\":\"tiny\",\"prompt\":\"$LONG\",\"max_tokens\":16,\"temperature\":0}"
add full_hit /v1/completions "{\"model\":\"tiny\",\"prompt\":\"$LONG\",\"max_tokens\":16,\"temperature\":0}"
add partial_hit /v1/completions "{\"model\":\"tiny\",\"prompt\":\"$LONG and then the engine stopped\",\"max_tokens\":12,\"temperature\":0}"
add chat /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"Tell me about ferries"}],"max_tokens":12,"temperature":0}'
add stream /v1/completions "{\"model\":\"tiny\",\"prompt\":\"$LONG\",\"max_tokens\":10,\"temperature\":0,\"stream\":true}"
add chat_stream /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"Stream please"}],"max_tokens":10,"temperature":0,"stream":true}'
for i in $(seq 0 31); do
  add "c$i" /v1/completions "{\"model\":\"tiny\",\"prompt\":\"Concurrent request $i: $(printf 'word%.0s ' $(seq 0 $((i % 9 * 4))))\",\"max_tokens\":$((6 + i % 5)),\"temperature\":0}"
done
ORDER=(short multi full_hit partial_hit chat stream chat_stream)

# text_of FILE: the generated text of a JSON answer or an SSE stream, as repr().
text_of() {
  python3 - "$1" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
if raw.startswith("data: "):
    text = ""
    for ev in raw.split("\n\n"):
        if not ev.startswith("data: ") or ev == "data: [DONE]":
            continue
        c = json.loads(ev[6:])
        if "error" in c:
            raise SystemExit("error event: %s" % c)
        for ch in c.get("choices", []):
            text += ch.get("text") or ch.get("delta", {}).get("content") or ""
    print(repr(text))
else:
    j = json.loads(raw)
    ch = j["choices"][0]
    print(repr(ch["text"] if "text" in ch else ch["message"]["content"]))
PY
}
ask() {  # ask NS URL ID OUT : POSTs request ID, writes the body to OUT, prints the status
  in_ns "$1" curl -s -o "$4" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
    -d "${BODIES[$3]}" "$2${PATHS[$3]}"
}
for id in "${ORDER[@]}" $(seq -f 'c%g' 0 31); do
  code=$(ask "" "http://127.0.0.1:$REF_PORT" "$id" "$TMP/ref-$id.out")
  [[ $code == 200 ]] || fail "reference $id: HTTP $code $(cat "$TMP/ref-$id.out")"
  text_of "$TMP/ref-$id.out" >"$TMP/ref-$id.txt" || fail "reference $id unreadable"
done
kill -TERM "$REF_PID"
wait "$REF_PID" || true
pass "reference answers from one colocated instance"

# ---- the disaggregated deployment --------------------------------------------------------
start_pd() {  # start_pd POLICY ABORT_TIMEOUT_S
  BOOT_PORT=$(free_port)
  P_PORT=$(free_port)
  D_PORT=$(free_port)
  PROXY_PORT=$(free_port)
  local prole=kv_producer crole=kv_consumer d_boot=$BOOT_PORT
  if [[ $ROLES == both ]]; then prole=kv_both crole=kv_both d_boot=$(free_port); fi
  local kvp="{\"kv_connector\":\"MooncakeConnector\",\"kv_role\":\"$prole\",\"kv_connector_extra_config\":{\"mooncake_protocol\":\"$PROTOCOL\",\"num_workers\":4}}"
  local kvc="{\"kv_connector\":\"MooncakeConnector\",\"kv_role\":\"$crole\",\"kv_connector_extra_config\":{\"mooncake_protocol\":\"$PROTOCOL\"}}"
  spawn_in "$P_NS" env "${SECRET_ENV[@]}" VLLM_MOONCAKE_BOOTSTRAP_PORT="$BOOT_PORT" VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT="$2" \
    "$FERRY" serve "$TMP/model" --host "$P_IP" --port "$P_PORT" "${SERVE_ARGS[@]}" \
    --kv-transfer-config "$kvp" >"$TMP/prefill.log" 2>&1 &
  P_PID=$!
  PIDS+=("$P_PID")
  spawn_in "$D_NS" env "${SECRET_ENV[@]}" FERRY_KV_LOAD_FAILURE_POLICY="$1" VLLM_MOONCAKE_BOOTSTRAP_PORT="$d_boot" \
    "$FERRY" serve "$TMP/model" --host "$D_IP" --port "$D_PORT" "${SERVE_ARGS[@]}" \
    --kv-transfer-config "$kvc" >"$TMP/decode.log" 2>&1 &
  D_PID=$!
  PIDS+=("$D_PID")
  wait_healthy "$P_NS" "http://$P_IP:$P_PORT" "$P_PID" "prefill"
  wait_healthy "$D_NS" "http://$D_IP:$D_PORT" "$D_PID" "decode"
  spawn_in "$D_NS" env "${SECRET_ENV[@]}" "$FERRY" proxy --host "$D_IP" --port "$PROXY_PORT" --health-interval 0.2 \
    --prefill "http://$P_IP:$P_PORT" "$BOOT_PORT" --decode "http://$D_IP:$D_PORT" \
    >"$TMP/proxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  PROXY="http://$D_IP:$PROXY_PORT"
  wait_healthy "$D_NS" "$PROXY" "$PROXY_PID" "proxy"
}
stop_pd() {
  for pid in "$PROXY_PID" "$D_PID" "$P_PID"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$PROXY_PID" "$D_PID" "$P_PID"; do wait "$pid" 2>/dev/null || true; done
}
metric() {  # metric NS URL NAME
  in_ns "$1" curl -sf "$2/metrics" | awk -v m="$3" '$1 == m {print $2}'
}

start_pd recompute 480
pass "prefill, decode and proxy up (protocol $PROTOCOL, roles $ROLES, $AUTH)"
if [[ $AUTH == secret ]]; then
  # Outsiders: the bootstrap table is not readable, a registration is refused, and a decoder
  # will not contact a bootstrap server that a client names (not signed by the proxy).
  code=$(in_ns "$D_NS" curl -s -o /dev/null -w '%{http_code}' "http://$P_IP:$BOOT_PORT/query")
  [[ $code == 401 ]] || fail "unauthenticated bootstrap /query: HTTP $code"
  code=$(in_ns "$D_NS" curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"engine_id":"evil","dp_rank":0,"addr":"tcp://10.9.9.9:1"}' "http://$P_IP:$BOOT_PORT/register")
  [[ $code == 401 ]] || fail "unauthenticated bootstrap /register: HTTP $code"
  evil="{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":2,\"kv_transfer_params\":{\"do_remote_prefill\":true,\"do_remote_decode\":false,\"transfer_id\":\"xfer-evil\",\"remote_bootstrap_addr\":\"http://$P_IP:$BOOT_PORT\"}}"
  code=$(in_ns "$D_NS" curl -s -o "$TMP/evil.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$evil" "http://$D_IP:$D_PORT/v1/completions")
  [[ $code == 403 ]] || fail "client-named bootstrap server: HTTP $code $(cat "$TMP/evil.out")"
  pass "with the secret: bootstrap refuses outsiders (401), decode refuses a client-named bootstrap server (403)"
  # The API key: without it the proxy and the instances answer 401 (health stays open);
  # with it the proxy's calls to both instances pass (every answer below needs that).
  for url in "$PROXY" "http://$D_IP:$D_PORT" "http://$P_IP:$P_PORT"; do
    code=$(in_ns "$D_NS" curl -q -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d '{"model":"tiny","prompt":"x","max_tokens":2}' "$url/v1/completions")
    [[ $code == 401 ]] || fail "no API key at $url: HTTP $code"
    code=$(in_ns "$D_NS" curl -q -s -o /dev/null -w '%{http_code}' "$url/health")
    [[ $code == 200 ]] || fail "$url/health without the API key: HTTP $code"
  done
  pass "API key: 401 without it at the proxy and both instances, /health open"
fi

for id in "${ORDER[@]}"; do
  code=$(ask "$D_NS" "$PROXY" "$id" "$TMP/pd-$id.out")
  [[ $code == 200 ]] || fail "$id through the proxy: HTTP $code $(cat "$TMP/pd-$id.out")"
  text_of "$TMP/pd-$id.out" >"$TMP/pd-$id.txt" || fail "$id: unreadable answer"
  cmp -s "$TMP/ref-$id.txt" "$TMP/pd-$id.txt" ||
    fail "$id: disaggregated $(cat "$TMP/pd-$id.txt") != colocated $(cat "$TMP/ref-$id.txt")"
  pass "$id equals the colocated answer: $(cat "$TMP/pd-$id.txt")"
done
SENT=$(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_bytes_sent_total)
RECV=$(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_bytes_received_total)
[[ -n "$SENT" && "${SENT%.*}" -gt 0 ]] || fail "prefill sent no KV bytes (metric '$SENT')"
[[ "${SENT%.*}" == "${RECV%.*}" ]] || fail "bytes sent $SENT != bytes received $RECV"
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_recomputed_total) == 0 ]] ||
  fail "decode recomputed prompts instead of using the transferred KV"
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_transfer_failures_total) == 0 ]] ||
  fail "decode saw failed transfers"
[[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_transfers_total) -ge ${#ORDER[@]} ]] ||
  fail "prefill pushed fewer transfers than requests"
pass "KV moved: $SENT bytes in $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_transfers_total) transfers, none recomputed"

pids=()
for i in $(seq 0 31); do
  (code=$(ask "$D_NS" "$PROXY" "c$i" "$TMP/pd-c$i.out")
   [[ $code == 200 ]] && text_of "$TMP/pd-c$i.out" >"$TMP/pd-c$i.txt") &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent request failed"; done
for i in $(seq 0 31); do
  cmp -s "$TMP/ref-c$i.txt" "$TMP/pd-c$i.txt" ||
    fail "c$i: disaggregated $(cat "$TMP/pd-c$i.txt") != colocated $(cat "$TMP/ref-c$i.txt")"
done
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_recomputed_total) == 0 ]] ||
  fail "decode recomputed under concurrency"
pass "32 concurrent requests equal the colocated answers"

# Nobody is left waiting and nothing is left held.
for _ in $(seq 50); do
  [[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_requests_kept) == 0 ]] && break
  sleep 0.1
done
[[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_requests_kept) == 0 ]] || fail "prefill still holds blocks"
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_waiting) == 0 ]] || fail "decode still waiting"
if [[ $ROLES == both ]]; then  # a kv_both decoder keeps nothing for requests it decodes itself
  [[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_kept) == 0 ]] || fail "kv_both decode holds blocks"
fi
pass "no blocks held, no request waiting"

# A malformed request to the proxy and an unknown model are clear 4xx errors.
code=$(in_ns "$D_NS" curl -s -o "$TMP/bad.out" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"prompt":' "$PROXY/v1/completions")
[[ $code == 400 ]] || fail "broken JSON through the proxy: $code"
code=$(in_ns "$D_NS" curl -s -o "$TMP/bad.out" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"model":"nope","prompt":"x"}' "$PROXY/v1/completions")
[[ $code == 404 ]] || fail "unknown model through the proxy: $code $(cat "$TMP/bad.out")"
pass "proxy passes decoder errors through as HTTP errors"

# ---- prefill killed with requests in flight: recompute ------------------------------------
# SIGSTOP first, so that the requests are certainly waiting on the prefill when it dies.
kill -STOP "$P_PID"
pids=()
for i in $(seq 0 7); do
  (code=$(ask "$D_NS" "$PROXY" "c$i" "$TMP/kill-c$i.out")
   echo "$code" >"$TMP/kill-c$i.code") &
  pids+=($!)
done
for _ in $(seq 50); do
  [[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_waiting) == 8 ]] && break
  sleep 0.1
done
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_waiting) == 8 ]] ||
  fail "decode is not waiting on the stopped prefill: waiting=$(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_waiting) codes=$(cat "$TMP"/kill-c*.code 2>/dev/null | tr "\n" " ") $(head -c 300 "$TMP/kill-c0.out" 2>/dev/null)"
start=$(date +%s.%N)
kill -KILL "$P_PID"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
elapsed=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
for i in $(seq 0 7); do
  [[ $(cat "$TMP/kill-c$i.code") == 200 ]] || fail "c$i after the prefill died: HTTP $(cat "$TMP/kill-c$i.code") $(cat "$TMP/kill-c$i.out")"
  text_of "$TMP/kill-c$i.out" >"$TMP/kill-c$i.txt"
  cmp -s "$TMP/ref-c$i.txt" "$TMP/kill-c$i.txt" || fail "c$i recomputed wrongly"
done
python3 -c "import sys; sys.exit(0 if $elapsed <= 5 else 1)" || fail "clients waited ${elapsed}s after the prefill died"
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_recomputed_total) == 8 ]] || fail "recompute not counted"
code=$(in_ns "$D_NS" curl -s -o "$TMP/alone.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "${BODIES[short]}" "http://$D_IP:$D_PORT/v1/completions")
[[ $code == 200 ]] || fail "decode stopped serving after the prefill died"
pass "prefill killed with 8 requests waiting: all answered correctly ${elapsed}s after the kill (recompute); decode still serves"
stop_pd

# ---- fail policy and the abort timeout ------------------------------------------------------
start_pd fail 2
# A prefill-only request that no decoder claims: freed after the 2 s abort timeout.
code=$(in_ns "$P_NS" curl -s -o "$TMP/orphan.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"model\":\"tiny\",\"prompt\":\"$LONG\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true,\"do_remote_prefill\":false,\"transfer_id\":\"xfer-orphan\"}}" \
  "http://$P_IP:$P_PORT/v1/completions")
[[ $code == 200 ]] || fail "prefill-only request: HTTP $code $(cat "$TMP/orphan.out")"
[[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_requests_kept) == 1 ]] || fail "prefill did not keep the blocks"
for _ in $(seq 80); do
  [[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_expired_requests_total) == 1 ]] && break
  sleep 0.1
done
[[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_expired_requests_total) == 1 ]] || fail "abort timeout did not fire"
[[ $(metric "$P_NS" "http://$P_IP:$P_PORT" ferry_kv_blocks_used) == 0 ]] || fail "blocks not freed after the abort timeout"
pass "abort timeout frees unclaimed blocks and counts them"

kill -STOP "$P_PID"
pids=()
for i in $(seq 0 3); do
  (code=$(ask "$D_NS" "$PROXY" "c$i" "$TMP/fail-c$i.out"); echo "$code" >"$TMP/fail-c$i.code") &
  pids+=($!)
done
for _ in $(seq 50); do
  [[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_requests_waiting) == 4 ]] && break
  sleep 0.1
done
start=$(date +%s.%N)
kill -KILL "$P_PID"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
elapsed=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
# The decoder fails each request (no recompute); the proxy retries it once, and with the
# prefill gone the decoder serves it whole: every client still gets the right answer.
for i in $(seq 0 3); do
  code=$(cat "$TMP/fail-c$i.code")
  [[ $code == 200 ]] || fail "c$i under the fail policy: HTTP $code $(cat "$TMP/fail-c$i.out")"
  text_of "$TMP/fail-c$i.out" >"$TMP/fail-c$i.txt"
  cmp -s "$TMP/ref-c$i.txt" "$TMP/fail-c$i.txt" || fail "c$i answered wrongly after the retry"
done
python3 -c "import sys; sys.exit(0 if $elapsed <= 5 else 1)" || fail "fail policy: clients waited ${elapsed}s"
[[ $(metric "$D_NS" "http://$D_IP:$D_PORT" ferry_kv_recomputed_total) == 0 ]] || fail "the fail policy recomputed"
retries=$(metric "$D_NS" "$PROXY" ferry_proxy_retries_total)
[[ ${retries%.*} -ge 4 ]] || fail "the proxy did not retry: $retries"
# Asked directly (no proxy to retry), the decoder answers the failure as an HTTP error.
direct="{\"model\":\"tiny\",\"prompt\":\"$LONG\",\"max_tokens\":4,\"kv_transfer_params\":{\"do_remote_prefill\":true,\"do_remote_decode\":false,\"transfer_id\":\"xfer-dead\",\"remote_bootstrap_addr\":\"http://$P_IP:$BOOT_PORT\"}}"
code=$(in_ns "$D_NS" curl -s -o "$TMP/fail-direct.out" -w '%{http_code}' --max-time 30 \
  -H 'Content-Type: application/json' -d "$direct" "http://$D_IP:$D_PORT/v1/completions")
[[ $code != 200 && $code != 000 ]] || fail "direct request under the fail policy: HTTP $code"
grep -q '"error"' "$TMP/fail-direct.out" || fail "direct request: HTTP $code without an error body"
pass "fail policy: 4 waiting clients answered correctly ${elapsed}s after the kill (decoder failed, proxy retried); asked directly, the decoder answers HTTP $code"
stop_pd
echo "disagg e2e ($MODE, roles $ROLES): all passed"
