"""The soak's processes: one `ferry` process that can be started, signalled and restarted
on the same ports (`Proc`), the disaggregated deployment (`Deployment`: prefill and decode
instances and the proxy), and clean-up that leaves nothing behind.

Every child is started
  - in its own process group (start_new_session), so that a terminal's Ctrl-C reaches
    only the harness, which then stops the children itself, and signals go to the group;
  - under `setpriv --pdeathsig KILL`, so that it dies with the harness even when the
    harness is SIGKILLed (a ctest timeout). The death signal fires when the *thread* that
    spawned the child exits, so every start and restart happens on the main thread;
  - with FERRY_SOAK_RUN=<run id> in its environment, so that `find_strays` can find any
    process of this run still alive at the end, whatever its process group.

Thread-safety: start/stop/signal run on the main thread only; `snapshot()` and
`incarnation` may be read from any thread.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=1.0, host="127.0.0.1"):
    """(status, body) of GET path, or (0, error text) if it could not be had in time."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, repr(e)
    finally:
        conn.close()


class Proc:
    """One long-lived ferry process, restartable with the same argv, env and ports."""

    def __init__(self, name, role, argv, env, log_path, port, bootstrap_port=None):
        self.name = name
        self.role = role  # "prefill", "decode", "proxy", "reference"
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.port = port
        self.bootstrap_port = bootstrap_port
        self._lock = threading.Lock()
        self._popen = None  # GUARDED_BY(_lock)
        self._incarnation = 0  # GUARDED_BY(_lock)
        self.all_popens = []  # every incarnation, for clean-up (main thread only)

    def start(self):
        """Starts a new incarnation (main thread only). The log is appended to, after a
        marker line naming the incarnation."""
        with self._lock:
            n = self._incarnation + 1
        with open(self.log_path, "ab") as log:
            log.write(("=== soak: %s incarnation %d starting at %s ===\n" %
                       (self.name, n, time.strftime("%H:%M:%S"))).encode())
            log.flush()
            p = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--"] + self.argv,
                                 env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.all_popens.append(p)
        with self._lock:
            self._popen = p
            self._incarnation = n

    def snapshot(self):
        """(pid, incarnation) of the running incarnation, or (None, incarnation)."""
        with self._lock:
            p, n = self._popen, self._incarnation
        if p is None or p.poll() is not None:
            return None, n
        return p.pid, n

    @property
    def incarnation(self):
        with self._lock:
            return self._incarnation

    def running(self):
        return self.snapshot()[0] is not None

    def returncode(self):
        with self._lock:
            p = self._popen
        return None if p is None else p.poll()

    def signal_group(self, sig):
        """Sends sig to the running incarnation's process group; False if none runs."""
        pid, _ = self.snapshot()
        if pid is None:
            return False
        try:
            os.killpg(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def wait_exit(self, timeout):
        """Seconds until the running incarnation exited (reaped), or None at the timeout."""
        with self._lock:
            p = self._popen
        if p is None:
            return 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if p.poll() is not None:
                return time.monotonic() - t0
            time.sleep(0.01)
        return None

    def terminate_timed(self, limit_s, give_up_s):
        """SIGTERM, then the seconds it took to exit. Past give_up_s it is SIGKILLed and
        the result is (None, rc). Returns (seconds or None, returncode)."""
        if not self.signal_group(signal.SIGTERM):
            return 0.0, self.returncode()
        took = self.wait_exit(give_up_s)
        if took is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGKILL)
            self.wait_exit(10)
        return took, self.returncode()

    def healthy(self):
        """GET /health answers 200 (a prefill's bootstrap server must also know its
        engine, as the proxy requires)."""
        status, _ = http_get(self.port, "/health")
        if status != 200:
            return False
        if self.role == "prefill":
            status, body = http_get(self.bootstrap_port, "/query")
            if status != 200:
                return False
            try:
                return "engine_id" in json.loads(body)["0"]
            except (ValueError, KeyError, TypeError):
                return False
        return True

    def wait_healthy(self, timeout):
        """True once healthy; False if it exited or the timeout passed first."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.running():
                return False
            if self.healthy():
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()[-16384:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])


class Deployment:
    """n_prefill kv_producer and n_decode kv_consumer instances of `ferry serve` and one
    `ferry proxy`, on 127.0.0.1 with KV over tcp, each on its own free ports."""

    SERVE_ARGS = ["--served-model-name", "tiny", "--num-kv-blocks", "512", "--block-size", "16",
                  "--max-num-seqs", "64"]

    def __init__(self, ferry, model_dir, workdir, n_prefill, n_decode, base_env, abort_timeout_s,
                 failure_policy, health_interval_s):
        self.prefills, self.decodes = [], []
        env_common = dict(base_env)
        env_common["VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT"] = str(abort_timeout_s)
        env_common["FERRY_KV_LOAD_FAILURE_POLICY"] = failure_policy
        for role, count, out in (("prefill", n_prefill, self.prefills),
                                 ("decode", n_decode, self.decodes)):
            for i in range(count):
                name = "%s%d" % (role, i)
                port, boot = free_port(), free_port()
                extra = {"mooncake_protocol": "tcp"}
                if role == "prefill":
                    extra["num_workers"] = 4
                kv = {"kv_connector": "MooncakeConnector",
                      "kv_role": "kv_producer" if role == "prefill" else "kv_consumer",
                      "kv_connector_extra_config": extra}
                argv = [ferry, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port)]
                argv += self.SERVE_ARGS + ["--kv-transfer-config", json.dumps(kv)]
                env = dict(env_common, VLLM_MOONCAKE_BOOTSTRAP_PORT=str(boot))
                out.append(Proc(name, role, argv, env, os.path.join(workdir, name + ".log"), port,
                                boot))
        proxy_port = free_port()
        argv = [ferry, "proxy", "--host", "127.0.0.1", "--port", str(proxy_port),
                "--health-interval", str(health_interval_s)]
        for p in self.prefills:
            argv += ["--prefill", "http://127.0.0.1:%d" % p.port, str(p.bootstrap_port)]
        for d in self.decodes:
            argv += ["--decode", "http://127.0.0.1:%d" % d.port]
        self.proxy = Proc("proxy", "proxy", argv, dict(base_env),
                          os.path.join(workdir, "proxy.log"), proxy_port)

    @property
    def procs(self):
        return self.prefills + self.decodes + [self.proxy]

    def start(self, timeout_s=60):
        """Starts everything and waits until the proxy reports every instance healthy.
        Returns "" or what went wrong."""
        for p in self.prefills + self.decodes:
            p.start()
        for p in self.prefills + self.decodes:
            if not p.wait_healthy(timeout_s):
                return "%s not healthy within %ds:\n%s" % (p.name, timeout_s, p.log_tail())
        self.proxy.start()
        if not self.wait_recovered(timeout_s):
            return "proxy does not see every instance healthy within %ds: %s\n%s" % (
                timeout_s, http_get(self.proxy.port, "/status"), self.proxy.log_tail())
        return ""

    def recovered(self):
        """Every process healthy and the proxy's /status says every instance is healthy."""
        if not all(p.healthy() for p in self.procs):
            return False
        status, body = http_get(self.proxy.port, "/status")
        if status != 200:
            return False
        try:
            j = json.loads(body)
            return all(e["healthy"] for e in j["prefill"] + j["decode"])
        except (ValueError, KeyError, TypeError):
            return False

    def unhealthy(self):
        """What keeps recovered() false, one line per failing check."""
        out = []
        for p in self.procs:
            if not p.running():
                out.append("%s is not running (rc %s)" % (p.name, p.returncode()))
                continue
            status, body = http_get(p.port, "/health")
            if status != 200:
                out.append("%s GET /health: %s %s" % (p.name, status or "no answer", body[:80]))
            if p.role == "prefill":
                status, body = http_get(p.bootstrap_port, "/query")
                if status != 200 or "engine_id" not in body:
                    out.append("%s GET bootstrap /query: %s %s" % (p.name, status or "no answer",
                                                                   body[:80]))
        status, body = http_get(self.proxy.port, "/status")
        if status != 200 or '"healthy":false' in body.replace(" ", ""):
            out.append("proxy GET /status: %s %s" % (status or "no answer", body[:300]))
        return out

    def wait_recovered(self, timeout_s):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.recovered():
                return True
            time.sleep(0.1)
        return False


def stop_all(procs, grace_s=5.0):
    """Stops every incarnation of procs that still runs: SIGCONT (a paused one cannot
    exit), SIGTERM, then SIGKILL after grace_s. Reaps them all."""
    live = [p for proc in procs for p in proc.all_popens if p.poll() is None]
    for p in live:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
    t0 = time.monotonic()
    while time.monotonic() - t0 < grace_s and any(p.poll() is None for p in live):
        time.sleep(0.05)
    for p in live:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)


def find_strays(marker):
    """(pid, cmdline) of every process other than this one whose environment holds
    marker ("FERRY_SOAK_RUN=<id>")."""
    needle = marker.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                environ = f.read() + b"\0"
            if needle not in environ:
                continue
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open("/proc/%s/stat" % entry, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0].decode()
            if state != "Z":  # a zombie is already dead; its parent reaps it
                found.append((int(entry), cmd))
        except OSError:
            continue
    return found
