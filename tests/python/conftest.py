"""Fixtures for the Python binding tests: a target process (peer.py) per transport."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer import expected_pattern  # noqa: E402

PEER_SIZE = 1 << 20
PEER_SEED = 7


class Peer:
    """A running peer.py: .name ("127.0.0.1:port"), .addr, .size of its buffer."""

    def __init__(self, api, transport, metadata="P2PHANDSHAKE"):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "peer.py"), "--api", api, "--transport",
             transport, "--size", str(PEER_SIZE), "--seed", str(PEER_SEED), "--metadata",
             metadata],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.proc.stdout.readline())
        self.name, self.addr, self.size = hello["name"], hello["addr"], hello["size"]
        self.pattern = expected_pattern(self.size, PEER_SEED)

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def digest(self, offset, length):
        return self.ask(cmd="digest", offset=offset, length=length)["sha256"]

    def notifies(self, count=1):
        return self.ask(cmd="notifies", count=count)["notifies"]

    def stop(self):
        try:
            self.ask(cmd="exit")
        except (BrokenPipeError, ValueError):
            pass
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def sha(data):
    return hashlib.sha256(bytes(data)).hexdigest()


@pytest.fixture(scope="module", params=["tcp", "shm"])
def transport(request):
    return request.param


# --- the store: a real `ferry master` process -------------------------------------------
FERRY_BIN = os.environ.get("FERRY_BIN") or os.path.join(
    os.path.dirname(os.path.dirname(HERE)), "build", "bin", "ferry")


class Master:
    """A running `ferry master` on 127.0.0.1 with free ports: .address ("127.0.0.1:port").
    Its output goes to a file (a pipe nobody reads could fill and stall it)."""

    def __init__(self, *flags, log_dir=None):
        import re
        import tempfile
        import time
        self.log = tempfile.NamedTemporaryFile("w+", prefix="ferry-master-", suffix=".log",
                                               dir=log_dir, delete=False)
        self.proc = subprocess.Popen(
            [FERRY_BIN, "master", "--rpc_port=0", "--metrics_port=0",
             "--rpc_address=127.0.0.1", *flags],
            stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while True:
            with open(self.log.name) as f:
                m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(metrics port (\d+)", f.read())
            if m:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log.name) as f:
                    raise RuntimeError("ferry master did not start:\n" + f.read())
            time.sleep(0.02)
        self.port, self.metrics_port = int(m.group(1)), int(m.group(2))
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="session")
def store_master():
    """One master for the store suites; a 3 s read lease keeps the lease tests quick."""
    import ferry.store
    if not ferry.store.HAS_STORE:
        pytest.skip("the extension was built without the store client")
    m = Master("--default_kv_lease_ttl=3s", "--client_ttl=10")
    yield m
    m.stop()
