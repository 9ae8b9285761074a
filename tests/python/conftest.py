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
