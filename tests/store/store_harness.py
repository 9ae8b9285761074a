"""Process harness shared by the store's end-to-end suites and bench/store_failover_bench.py:
free ports, a Proc (start, wait until ready, signal, kill, its log) and an etcd to test
against (/usr/bin/etcd on free ports, a temporary data dir).

    from store_harness import FERRY, Proc, Etcd, free_port
    etcd = Etcd(tmp_path)                       # .endpoint "127.0.0.1:PORT", .url
    m = Proc("m0", [FERRY, "master", ...], tmp_path / "m0.log")
    m.start(ready="listening on")               # a string in the log, or a callable
    m.signal(signal.SIGSTOP); m.kill()
"""

import json
import os
import shutil
from signal import SIGCONT, SIGKILL, SIGTERM
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

FERRY = os.environ.get("FERRY_BIN", "build/bin/ferry")
ETCD = os.environ.get("ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"

_handed_out = set()


def answer_channel():
    """For worker processes that answer a test in JSON lines on stdout: keeps stdout for the
    answers (the library's log lines, written to fd 1, go to stderr instead) and returns
    answer(reply), which writes one line and flushes."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(reply):
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

    return answer


def free_port():
    """A port nothing listens on now, not handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def http_get(port, path, timeout=1.0, host="127.0.0.1"):
    """(status, body text) of GET http://host:port/path; (None, why) when it fails."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (host, port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ValueError) as e:  # refused, reset, timed out
        return None, str(e)


def http_json(port, path, timeout=1.0):
    """The JSON body of a 200 answer, or None."""
    status, body = http_get(port, path, timeout)
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def wait_for(what, fn, timeout, interval=0.05):
    """fn()'s first truthy value within `timeout` seconds; AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """One child process in its own session (so a signal reaches its whole group), its
    stdout and stderr in a log file (a pipe nobody reads could fill and stall it)."""

    def __init__(self, name, cmd, log_path, env=None, prefix=()):
        self.name = name
        self.cmd = list(prefix) + [str(c) for c in cmd]
        self.log_path = str(log_path)
        self.env = env
        self.popen = None
        self._log = None
        self._log_start = 0

    def start(self, ready=None, timeout=20):
        """Starts it (appending to its log); then wait_ready(ready) when given."""
        self._log = open(self.log_path, "a+")
        self._log_start = self._log.tell()
        env = None
        if self.env is not None:
            env = dict(os.environ)
            env.update(self.env)
        self.popen = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env,
                                      start_new_session=True)
        if ready is not None:
            return self.wait_ready(ready, timeout)
        return ""

    def log(self, whole=False):
        """The log written since the last start (all runs with whole=True)."""
        with open(self.log_path, errors="replace") as f:
            if not whole:
                f.seek(self._log_start)
            return f.read()

    def wait_ready(self, ready, timeout=20):
        """Until `ready` (a string in the log, or a callable returning truthy) holds; the
        process exiting first, or the timeout, is an AssertionError with its log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            value = (ready in text) if isinstance(ready, str) else ready()
            if value:
                return text if isinstance(ready, str) else value
            if self.popen.poll() is not None:
                raise AssertionError("%s exited (%s) before it was ready:\n%s" % (
                    self.name, self.popen.returncode, self.log()[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError("%s not ready after %ds:\n%s" % (
                    self.name, timeout, self.log()[-4000:]))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        os.killpg(self.popen.pid, sig)

    def wait(self, timeout=10):
        return self.popen.wait(timeout=timeout)

    def kill(self, sig=SIGKILL):
        """Sends `sig` (after a SIGCONT, in case it is stopped) and reaps it."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, SIGCONT)
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
        try:
            rc = self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, SIGKILL)
            rc = self.popen.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit."""
        return self.kill(SIGTERM)


class Etcd(Proc):
    """A one-member etcd on free 127.0.0.1 ports with its data under `tmp`:
    .endpoint ("127.0.0.1:PORT"), .url ("etcd://127.0.0.1:PORT"). restart() brings it back
    on the same data dir and ports (after kill())."""

    def __init__(self, tmp, name="etcd", start=True):
        self.client_port, self.peer_port = free_port(), free_port()
        self.data_dir = os.path.join(str(tmp), name + ".data")
        peer = "http://127.0.0.1:%d" % self.peer_port
        client = "http://127.0.0.1:%d" % self.client_port
        super().__init__(name, [
            ETCD, "--name", "default", "--data-dir", self.data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "default=" + peer, "--log-level", "warn"],
            os.path.join(str(tmp), name + ".log"))
        self.endpoint = "127.0.0.1:%d" % self.client_port
        self.url = "etcd://" + self.endpoint
        if start:
            self.start_and_wait()

    def healthy(self):
        status, body = http_get(self.client_port, "/health", timeout=1.0)
        return status == 200 and '"true"' in body

    def start_and_wait(self, timeout=20):
        self.start()
        return self.wait_ready(self.healthy, timeout)

    def restart(self, timeout=20):
        if self.alive():
            self.kill()
        return self.start_and_wait(timeout)
