"""The requests vLLM's own proxies send, byte for byte, against real `ferry serve` prefill and
decode instances (docs/connector.md, "vLLM revisions tried"). Each test sends exactly the
JSON body and headers that one revision of a vLLM proxy script sends, the two halves at
the same time where that proxy does so, and checks that both halves get 200, that the KV
really moved (no recompute on the decoder) and that the answer equals a plain instance's.

    FERRY_BIN=build/bin/ferry python3 -m pytest -q tests/e2e/vllm_proxy_compat_test.py
"""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

FERRY = os.environ.get("FERRY_BIN", "build/bin/ferry")
PROMPT = ("The ferry carried the travellers across the river while the gulls circled and "
          "the far bank grew slowly larger in the evening light")
BODY = {"model": "tiny", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "What does a ferry carry?"}],
        "max_tokens": 10, "temperature": 0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, headers=None, timeout=60):
    """(status, body text) of a POST with a JSON body, as httpx sends it."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric(base, name):
    total = 0.0
    for line in get(base + "/metrics")[1].splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def text_of(body):
    choice = json.loads(body)["choices"][0]
    return choice["text"] if "text" in choice else choice["message"]["content"]


def vllm_headers(request_id, dp_rank=None):
    # What every vLLM proxy revision sends; OPENAI_API_KEY unset gives "Bearer None".
    h = {"Authorization": "Bearer None", "X-Request-Id": request_id}
    if dp_rank is not None:
        h["X-data-parallel-rank"] = str(dp_rank)
    return h


def prefill_body(body, kv_transfer_params):
    """The prefill half, as every revision rewrites it."""
    b = dict(body)
    b["kv_transfer_params"] = kv_transfer_params
    b["stream"] = False
    b["max_tokens"] = 1
    if "max_completion_tokens" in b:
        b["max_completion_tokens"] = 1
    b.pop("stream_options", None)
    return b


def both_at_once(prefill, decode):
    """Sends the prefill half in the background (the proxies' asyncio.create_task) and the
    decode half at once; returns (prefill answer, decode answer)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("p", post(*prefill)))
    t.start()
    d = post(*decode)
    t.join(60)
    return out["p"], d


class Deployment:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.model = str(tmp / "model")
        subprocess.run([FERRY, "make-model", self.model], check=True, capture_output=True)

    def serve(self, name, kv=None, env=None):
        port = free_port()
        args = [FERRY, "serve", self.model, "--host", "127.0.0.1", "--port", str(port),
                "--served-model-name", "tiny", "--num-kv-blocks", "256"]
        if kv is not None:
            args += ["--kv-transfer-config", json.dumps(kv)]
        log = open(self.tmp / (name + ".log"), "w+")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, **(env or {})})
        self.procs.append(p)
        base = "http://127.0.0.1:%d" % port
        deadline = time.time() + 30
        while time.time() < deadline:
            assert p.poll() is None, name + " exited: " + (log.seek(0) or log.read())
            try:
                if get(base + "/health", timeout=2)[0] == 200:
                    return base
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(name + " did not become healthy")

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    dep = Deployment(tmp_path_factory.mktemp("vllm-compat"))
    dep.bport = free_port()
    dep.bport_old = free_port()
    env = {"FERRY_KV_SECRET": "", "VLLM_MOONCAKE_BOOTSTRAP_PORT": str(dep.bport)}
    dep.plain = dep.serve("plain")
    dep.prefill = dep.serve("prefill", {"kv_connector": "MooncakeConnector",
                                        "kv_role": "kv_producer"}, env)
    # The bootstrap server answering /query in the shape vLLM's proxy read at f1b4b28.
    dep.prefill_old = dep.serve(
        "prefill-by-engine-id",
        {"kv_connector": "MooncakeConnector", "kv_role": "kv_producer",
         "kv_connector_extra_config": {"bootstrap_query_format": "by_engine_id"}},
        {**env, "VLLM_MOONCAKE_BOOTSTRAP_PORT": str(dep.bport_old)})
    dep.decode = dep.serve("decode", {"kv_connector": "MooncakeConnector",
                                      "kv_role": "kv_consumer"}, env)
    dep.expected = {"/v1/completions": text_of(post(dep.plain + "/v1/completions", BODY)[1]),
                    "/v1/chat/completions": text_of(post(dep.plain + "/v1/chat/completions",
                                                         CHAT)[1])}
    yield dep
    dep.stop()


def check_disaggregated(d, api, prefill_answer, decode_answer, pushes_before, recomputed_before):
    assert prefill_answer[0] == 200, prefill_answer
    assert decode_answer[0] == 200, decode_answer
    assert text_of(decode_answer[1]) == d.expected[api]
    # the decoder pulled the KV (one push more on the prefills) and did not recompute
    deadline = time.time() + 10
    while time.time() < deadline and pushes(d) == pushes_before:
        time.sleep(0.05)
    assert pushes(d) == pushes_before + 1
    assert metric(d.decode, "ferry_kv_recomputed_total") == recomputed_before


def pushes(d):
    return (metric(d.prefill, "ferry_kv_transfers_total") +
            metric(d.prefill_old, "ferry_kv_transfers_total"))


def before(d):
    return pushes(d), metric(d.decode, "ferry_kv_recomputed_total")


@pytest.mark.parametrize("api,body", [("/v1/completions", BODY), ("/v1/chat/completions", CHAT)])
def test_proxy_8fc582d_bootstrap_host_and_port(d, api, body):
    """examples/.../mooncake_connector_proxy.py at 8fc582d: no transfer_id, no engine id,
    bootstrap_server_host / bootstrap_server_port, one X-Request-Id on both halves."""
    b = before(d)
    rid = str(uuid.uuid4())
    p_body = prefill_body(body, {"do_remote_decode": True, "do_remote_prefill": False})
    d_body = dict(body)
    d_body["kv_transfer_params"] = {"do_remote_decode": False, "do_remote_prefill": True,
                                    "bootstrap_server_host": "127.0.0.1",
                                    "bootstrap_server_port": d.bport}
    p, r = both_at_once((d.prefill + api, p_body, vllm_headers(rid)),
                        (d.decode + api, d_body, vllm_headers(rid)))
    check_disaggregated(d, api, p, r, *b)


def old_proxy_engine_ids(query_answer):
    """How the proxy at f1b4b28 reads /query: {engine_id: {dp_rank: ...}}."""
    dp_engine_id = {}
    for engine_id, engine_entry in query_answer.items():
        for dp_rank in engine_entry:
            dp_engine_id[int(dp_rank)] = engine_id
    return dp_engine_id


def test_proxy_f1b4b28_needs_by_engine_id(d):
    """At f1b4b28 the proxy reads /query by engine id: the current shape breaks it (its
    start-up task dies in int("engine_id") and it answers 503 for ever), the setting
    bootstrap_query_format "by_engine_id" serves it."""
    current = json.loads(get("http://127.0.0.1:%d/query" % d.bport)[1])
    with pytest.raises(ValueError):
        old_proxy_engine_ids(current)
    old = json.loads(get("http://127.0.0.1:%d/query" % d.bport_old)[1])
    assert old_proxy_engine_ids(old)[0]


@pytest.mark.parametrize("stream", [False, True])
def test_proxy_f1b4b28_remote_addr_engine_id_dp_rank(d, stream):
    """f1b4b28: remote_bootstrap_addr + remote_engine_id (from /query) + remote_dp_rank,
    X-data-parallel-rank on the prefill half, still no transfer_id."""
    api = "/v1/completions"
    bootstrap = "http://127.0.0.1:%d" % d.bport_old
    engine_id = old_proxy_engine_ids(json.loads(get(bootstrap + "/query")[1]))[0]
    b = before(d)
    rid = str(uuid.uuid4())
    body = dict(BODY, stream=stream)
    if stream:
        body["stream_options"] = {"include_usage": True}
    p_body = prefill_body(body, {"do_remote_decode": True, "do_remote_prefill": False})
    d_body = dict(body)
    d_body["kv_transfer_params"] = {"do_remote_decode": False, "do_remote_prefill": True,
                                    "remote_bootstrap_addr": bootstrap,
                                    "remote_engine_id": engine_id, "remote_dp_rank": 0}
    p, r = both_at_once((d.prefill_old + api, p_body, vllm_headers(rid, dp_rank=0)),
                        (d.decode + api, d_body, vllm_headers(rid)))
    if stream:
        assert r[0] == 200, r
        chunks = [json.loads(line[6:]) for line in r[1].splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        r = (200, json.dumps({"choices": [{"text": text}]}))
    check_disaggregated(d, api, p, r, *b)


def test_proxy_current_transfer_id(d):
    """The current proxy (and Ferry's protocol): transfer_id "xfer-<uuid>" on both halves,
    remote_engine_id read from /query by dp rank."""
    api = "/v1/completions"
    bootstrap = "http://127.0.0.1:%d" % d.bport
    query = json.loads(get(bootstrap + "/query")[1])
    engine_id = query["0"]["engine_id"]
    b = before(d)
    rid = str(uuid.uuid4())
    p_body = prefill_body(BODY, {"do_remote_decode": True, "do_remote_prefill": False,
                                 "transfer_id": "xfer-" + rid})
    d_body = dict(BODY)
    d_body["kv_transfer_params"] = {"do_remote_decode": False, "do_remote_prefill": True,
                                    "remote_bootstrap_addr": bootstrap,
                                    "remote_engine_id": engine_id, "transfer_id": "xfer-" + rid}
    p, r = both_at_once((d.prefill + api, p_body, vllm_headers(rid, dp_rank=0)),
                        (d.decode + api, d_body, vllm_headers(rid)))
    check_disaggregated(d, api, p, r, *b)


def test_nixl_toy_proxy_030ea52(d):
    """tests/v1/kv_connector/nixl_integration/toy_proxy_server.py (the proxy vLLM's
    MooncakeConnector guide named before the mooncake proxy existed): prefill first, its
    answer's kv_transfer_params go to the decoder, min_tokens null on the decode half."""
    api = "/v1/completions"
    b = before(d)
    rid = str(uuid.uuid4())
    p_body = prefill_body(BODY, {"do_remote_decode": True, "do_remote_prefill": False,
                                 "remote_engine_id": None, "remote_block_ids": None,
                                 "remote_host": None, "remote_port": None})
    p = post(d.prefill + api, p_body, vllm_headers(rid))
    assert p[0] == 200, p
    d_body = dict(BODY)
    d_body["kv_transfer_params"] = json.loads(p[1])["kv_transfer_params"]
    d_body["min_tokens"] = None
    d_body["min_completion_tokens"] = None
    r = post(d.decode + api, d_body, vllm_headers(rid))
    check_disaggregated(d, api, p, r, *b)


def test_bad_request_ids_are_clear_400s(d):
    """Without transfer_id the request id names the transfer; one that cannot is refused
    with a message saying so, and the instance keeps serving."""
    api = "/v1/completions"
    p_body = prefill_body(BODY, {"do_remote_decode": True, "do_remote_prefill": False})
    status, body = post(d.prefill + api, p_body, {"X-Request-Id": "x" * 300})
    assert status == 400, body
    assert "X-Request-Id" in json.loads(body)["error"]["message"]
    d_body = dict(BODY, kv_transfer_params={"do_remote_prefill": True,
                                            "bootstrap_server_host": "127.0.0.1",
                                            "bootstrap_server_port": 0})
    status, body = post(d.decode + api, d_body, {"X-Request-Id": "fine"})
    assert status == 400, body
    assert "bootstrap_server_port" in json.loads(body)["error"]["message"]
    assert post(d.decode + api, BODY)[0] == 200
