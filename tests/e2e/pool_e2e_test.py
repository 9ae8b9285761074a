"""`ferry serve` reusing KV through the pool, with real processes and real HTTP clients:
`ferry master`, `ferry store member`, instances with MooncakeStoreConnector (alone, and in
a MultiConnector beside the P2P MooncakeConnector behind `ferry proxy`). Every answer is
compared with a plain instance's greedy answer; faults (a member killed, the master down
at start and mid-run, a full pool) must never change an answer.

    FERRY_BIN=build/bin/ferry python3 -m pytest -q tests/e2e/pool_e2e_test.py
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

FERRY = os.environ.get("FERRY_BIN", "build/bin/ferry")
BLOCK = 16
LONG = ("The river carried the ferry across the wide brown water while the passengers "
        "watched the far bank grow slowly larger and the gulls circled overhead calling")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def complete(base, prompt, max_tokens=16):
    """Greedy completion: (text, usage)."""
    status, body = http(base + "/v1/completions", {"model": "tiny", "prompt": prompt,
                                                   "max_tokens": max_tokens, "temperature": 0})
    assert status == 200, body
    j = json.loads(body)
    return j["choices"][0]["text"], j["usage"]


def metrics(base):
    """Prometheus counters and gauges, summed over their label sets."""
    _, text = http(base + "/metrics")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class Deployment:
    """Processes of one test; all killed at the end."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}
        self.model = str(tmp / "model")
        subprocess.run([FERRY, "make-model", self.model], check=True, capture_output=True)
        self.master_port = free_port()
        self.master_addr = "127.0.0.1:%d" % self.master_port

    def spawn(self, name, args, env=None):
        log = open(self.tmp / (name + ".log"), "w+")
        p = subprocess.Popen([FERRY, *args], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, env={**os.environ, **(env or {})})
        self.procs[name] = (p, log)
        return p

    def log(self, name):
        log = self.procs[name][1]
        log.seek(0)
        return log.read()

    def wait_log(self, name, text):
        wait_for(lambda: text in self.log(name) or self.procs[name][0].poll() is not None,
                 name + " to log " + repr(text))
        assert self.procs[name][0].poll() is None, name + " exited: " + self.log(name)

    def master(self, *extra):
        self.spawn("master", ["master", "--rpc_address", "127.0.0.1", "--rpc_port",
                              str(self.master_port), "--metrics_port", "0", "--client_ttl", "2",
                              "--enable_http_metadata_server", "false", *extra])
        self.wait_log("master", "listening on")

    def member(self, name, size="64MB"):
        self.spawn(name, ["store", "member", "--local_hostname", "127.0.0.1",
                          "--master_server_address", self.master_addr, "--protocol", "tcp",
                          "--global_segment_size", size, "--transfer_timeout_ms", "3000"])
        self.wait_log(name, "member ready")

    def store_config(self, lend="0"):
        path = self.tmp / ("mooncake-%s.json" % lend)
        path.write_text(json.dumps({
            "local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
            "master_server_address": self.master_addr, "protocol": "tcp", "device_name": "",
            "global_segment_size": lend, "local_buffer_size": "1MB"}))
        return str(path)

    def serve(self, name, kv=None, env=None, lend="0"):
        port = free_port()
        args = ["serve", self.model, "--host", "127.0.0.1", "--port", str(port),
                "--served-model-name", "tiny", "--num-kv-blocks", "512", "--block-size",
                str(BLOCK)]
        if kv is not None:
            args += ["--kv-transfer-config", json.dumps(kv)]
        self.spawn(name, args, {"MOONCAKE_CONFIG_PATH": self.store_config(lend), **(env or {})})
        base = "http://127.0.0.1:%d" % port

        def healthy():
            assert self.procs[name][0].poll() is None, name + " exited: " + self.log(name)
            try:
                return http(base + "/health", timeout=2)[0] == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_for(healthy, name + " healthy", timeout=30)
        return base

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs[name][0]
        os.killpg(p.pid, sig)
        if sig == signal.SIGKILL:
            p.wait(timeout=10)

    def close(self):
        for p, log in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
            log.close()


STORE = {"kv_connector": "MooncakeStoreConnector", "kv_role": "kv_both"}
STORE_QUICK = {**STORE, "kv_connector_extra_config": {"rpc_timeout": 1, "transfer_timeout": 2}}


@pytest.fixture
def dep(tmp_path):
    d = Deployment(tmp_path)
    yield d
    d.close()


def full_blocks_of_all_but_last(n):
    return (n - 1) // BLOCK * BLOCK


def wait_saved(base, at_least=1):
    wait_for(lambda: metrics(base).get("ferry_kv_pool_save_blocks_total", 0) >= at_least,
             "the pool save")


def test_second_instance_loads_what_the_first_computed(dep):
    dep.master()
    dep.member("m")
    ref = dep.serve("ref")
    a = dep.serve("a", STORE)
    b = dep.serve("b", STORE)
    want, usage = complete(ref, LONG)
    n = usage["prompt_tokens"]
    assert n > 4 * BLOCK
    got_a, _ = complete(a, LONG)
    assert got_a == want
    wait_saved(a, n // BLOCK)
    before = metrics(b)
    got_b, usage_b = complete(b, LONG)
    assert got_b == want
    after = metrics(b)
    hit = after["ferry_kv_pool_hit_tokens_total"] - before.get("ferry_kv_pool_hit_tokens_total", 0)
    computed = (after["ferry_prompt_tokens_computed_total"] -
                before.get("ferry_prompt_tokens_computed_total", 0))
    assert hit == full_blocks_of_all_but_last(n), after
    assert computed == n - hit, after  # B computed only what the pool did not have
    assert after["ferry_kv_connector_hit_tokens_total"] == hit
    assert usage_b["prompt_tokens_details"]["cached_tokens"] == hit

    # A shared prefix with a different suffix: only the shared full blocks come from the
    # pool, on an instance that has seen neither prompt.
    c = dep.serve("c", STORE)
    other = LONG[:100] + " but the bridge was closed that morning"
    want2, usage2 = complete(ref, other)
    got_c, _ = complete(c, other)
    assert got_c == want2
    m = metrics(c)
    assert m["ferry_kv_pool_hit_tokens_total"] > 0, m
    assert m["ferry_kv_pool_hit_tokens_total"] % BLOCK == 0
    assert m["ferry_kv_pool_hit_tokens_total"] < full_blocks_of_all_but_last(usage2["prompt_tokens"])
    assert m["ferry_kv_pool_load_bytes_total"] > 0


def test_faults_never_change_an_answer(dep):
    # The master down at start: the instance serves without the pool, then joins it.
    b = dep.serve("b", STORE, lend="8MB")
    ref = dep.serve("ref")
    prompts = [LONG, LONG[::-1], "Another prompt about ferries and rivers " * 3]
    want = {p: complete(ref, p)[0] for p in prompts}
    assert complete(b, prompts[0])[0] == want[prompts[0]]
    assert metrics(b)["ferry_kv_pool_connected"] == 0
    dep.master()
    wait_for(lambda: metrics(b)["ferry_kv_pool_connected"] == 1, "b to join the pool")

    # The member holding the blocks (b lends the pool's only memory) is killed between the
    # lookup, which still finds them (the master drops a dead member after client_ttl), and
    # the load, which then fails: the instance computes the prompt itself.
    assert complete(b, prompts[1])[0] == want[prompts[1]]
    wait_saved(b)
    c = dep.serve("c", STORE)  # lends nothing
    dep.kill("b")
    before = metrics(c)
    assert complete(c, prompts[1])[0] == want[prompts[1]]
    m = metrics(c)
    assert m["ferry_kv_pool_lookups_total"] == before["ferry_kv_pool_lookups_total"] + 1
    assert m["ferry_kv_pool_load_failures_total"] == 1, m
    assert m["ferry_kv_pool_hit_tokens_total"] == 0, m

    # The member paused (SIGSTOP) with the blocks on it: the load runs into its deadline
    # and the prompt is computed; the answer is the same, within that deadline.
    e = dep.serve("e", STORE_QUICK, lend="8MB")
    assert complete(e, prompts[2])[0] == want[prompts[2]]
    wait_saved(e)
    f = dep.serve("f", STORE_QUICK)
    dep.kill("e", signal.SIGSTOP)
    start = time.time()
    assert complete(f, prompts[2])[0] == want[prompts[2]]
    assert time.time() - start < 10
    assert metrics(f)["ferry_kv_pool_load_failures_total"] == 1
    dep.kill("e")

    # The master killed mid-run: requests are still answered, from compute.
    dep.kill("master")
    for p in prompts:
        assert complete(c, p)[0] == want[p]

    # A full pool: a new master and one member too small for a single block; many distinct
    # prompts. Saving fails and pauses, answers stay right.
    dep.master()
    dep.member("small", size="4KB")
    d = dep.serve("d", STORE)
    for i in range(12):
        p = "Prompt number %d fills the pool: %s" % (i, LONG[i:])
        assert complete(d, p, 4)[0] == complete(ref, p, 4)[0]
    m = metrics(d)
    print("full pool:", {k: v for k, v in m.items() if k.startswith("ferry_kv_pool")})
    assert m["ferry_kv_pool_save_failures_total"] > 0, m
    assert m["ferry_kv_pool_saves_skipped_total"] > 0, m  # paused after the pool said full


def test_multi_connector_disaggregated_reuses_the_pool(dep):
    dep.master()
    dep.member("m")
    ref = dep.serve("ref")
    warm = dep.serve("warm", STORE)  # computes the prompt first and saves it
    boot = free_port()
    p2p = {"kv_connector": "MooncakeConnector", "kv_connector_extra_config":
           {"mooncake_protocol": "tcp", "num_workers": 2}}
    multi = lambda role: {"kv_connector": "MultiConnector", "kv_role": role,
                          "kv_connector_extra_config": {"connectors": [p2p, STORE]}}
    prefill = dep.serve("prefill", multi("kv_producer"),
                        env={"VLLM_MOONCAKE_BOOTSTRAP_PORT": str(boot)})
    decode = dep.serve("decode", multi("kv_consumer"),
                       env={"VLLM_MOONCAKE_BOOTSTRAP_PORT": str(free_port())})
    proxy_port = free_port()
    dep.spawn("proxy", ["proxy", "--host", "127.0.0.1", "--port", str(proxy_port),
                        "--health-interval", "0.2", "--prefill", prefill, str(boot),
                        "--decode", decode])
    proxy = "http://127.0.0.1:%d" % proxy_port

    def proxy_ready():
        try:
            return '"mode":"disaggregated"' in http(proxy + "/health", timeout=2)[1]
        except (urllib.error.URLError, OSError):
            return False

    wait_for(proxy_ready, "the proxy")
    want, usage = complete(ref, LONG)
    n = usage["prompt_tokens"]
    assert complete(warm, LONG)[0] == want
    wait_saved(warm, n // BLOCK)
    got, _ = complete(proxy, LONG)
    assert got == want
    pm, dm = metrics(prefill), metrics(decode)
    assert pm["ferry_kv_pool_hit_tokens_total"] == full_blocks_of_all_but_last(n), pm
    assert pm["ferry_prompt_tokens_computed_total"] == n - full_blocks_of_all_but_last(n)
    assert dm["ferry_kv_connector_hit_tokens_total"] == n - 1, dm  # from the prefill, P2P
    # A prompt nobody has seen still works through both connectors.
    fresh = "A fresh question about the ferry timetable " * 2
    assert complete(proxy, fresh)[0] == complete(ref, fresh)[0]
