"""Both APIs with a metadata service instead of P2PHANDSHAKE: `ferry metadata-server`
(Mooncake's HTTP contract) and a real etcd (Debian's etcd-server), in every spelling the
reference accepts: http://host:port/path, etcd://host:port and a bare host:port.

The target publishes its segment descriptor there; the initiator finds it by name only.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import numpy as np
import pytest

import ferry
from conftest import Peer, sha
from mooncake.engine import TransferEngine

FERRY_BIN = os.environ.get("FERRY_BIN", "")
ETCD_BIN = "/usr/bin/etcd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def http_server():
    """`ferry metadata-server` on a free port; yields its URL."""
    if not os.path.exists(FERRY_BIN):
        pytest.fail(f"FERRY_BIN={FERRY_BIN!r} is not the ferry binary (ctest sets it)")
    proc = subprocess.Popen([FERRY_BIN, "metadata-server", "--host", "127.0.0.1",
                             "--port", "0", "--path", "/metadata"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "ferry metadata-server listening on URL"
    assert "listening on " in line, line
    yield line.split("listening on ", 1)[1].strip()
    stop(proc)
    proc.stdout.close()


@pytest.fixture(scope="module")
def etcd_endpoint():
    """A single-member etcd on free ports in a temporary directory; yields host:port."""
    if not os.path.exists(ETCD_BIN):
        pytest.skip("etcd-server is not installed (scripts/install_deps.sh installs it)")
    data = tempfile.mkdtemp(prefix="ferry-pytest-etcd-")
    client, peer = free_port(), free_port()
    curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = open(os.path.join(data, "etcd.log"), "w")
    proc = subprocess.Popen(
        [ETCD_BIN, "--name=pytest", f"--data-dir={data}/data",
         f"--listen-client-urls={curl}", f"--advertise-client-urls={curl}",
         f"--listen-peer-urls={purl}", f"--initial-advertise-peer-urls={purl}",
         f"--initial-cluster=pytest={purl}", "--initial-cluster-state=new",
         "--log-level=warn"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(curl + "/health", timeout=1) as r:
                if json.loads(r.read()).get("health") == "true":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail("etcd did not become healthy: " + open(log.name).read()[-2000:])
        time.sleep(0.1)
    yield f"127.0.0.1:{client}"
    stop(proc)
    log.close()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["http", "etcd-url", "etcd-bare"])
def metadata(request):
    if request.param == "http":
        return request.getfixturevalue("http_server")
    endpoint = request.getfixturevalue("etcd_endpoint")
    return "etcd://" + endpoint if request.param == "etcd-url" else endpoint


def ferry_url(metadata):
    """Ferry's own API takes schemes only; a bare host:port means etcd (as in Mooncake)."""
    return metadata if "://" in metadata else "etcd://" + metadata


def test_mooncake_engine_finds_peer_through_metadata(metadata, transport):
    peer = Peer("mooncake", transport, metadata)
    try:
        e = TransferEngine()
        assert e.initialize("127.0.0.1", metadata, transport, "") == 0
        local = np.arange(64 * 1024, dtype=np.uint32).view(np.uint8)
        assert e.register_memory(local.ctypes.data, local.nbytes) == 0
        assert e.get_first_buffer_address(peer.name) == peer.addr
        assert e.transfer_sync_write(peer.name, local.ctypes.data, peer.addr + 4096,
                                     local.nbytes) == 0
        assert peer.digest(4096, local.nbytes) == sha(local)
        back = np.zeros(8192, dtype=np.uint8)
        assert e.register_memory(back.ctypes.data, back.nbytes) == 0
        assert e.transfer_sync_read(peer.name, back.ctypes.data, peer.addr,
                                    back.nbytes) == 0
        assert sha(back[:4096]) == sha(peer.pattern[:4096])
        assert sha(back[4096:]) == sha(local[:4096])
        # A name nobody published is a failure value, not an exception or a hang.
        assert e.get_first_buffer_address("127.0.0.1:1") == 0
        assert e.transfer_sync_write("127.0.0.1:1", local.ctypes.data, peer.addr, 8) < 0
        e.get_engine().close()
    finally:
        peer.stop()


def test_ferry_engine_through_metadata_and_unpublish(metadata, transport):
    peer = Peer("ferry", transport, ferry_url(metadata))
    name = peer.name
    with ferry.TransferEngine("127.0.0.1:0", ferry_url(metadata), transport) as e:
        buf = np.zeros(4096, dtype=np.uint8)
        e.register(buf)
        e.read(name, buf, peer.addr + 100)
        assert sha(buf) == sha(peer.pattern[100:4196])
        # The target removes its descriptor when it closes: a fresh engine can no longer
        # open the segment by name.
        peer.stop()
    with ferry.TransferEngine("127.0.0.1:0", ferry_url(metadata), transport) as fresh:
        with pytest.raises(ferry.FerryError):
            fresh.open_segment(name)
