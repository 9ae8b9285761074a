"""The pool with real processes: `ferry master`, two `ferry store member`s and clients
(`ferry store put|get|ls|rm`), over tcp between network namespaces (each process its own
address; 127.0.0.1 where namespaces are refused) and over shm on one host. Faults: a
member killed (-9) or paused (SIGSTOP) with objects on it, a client killed between
PutStart and PutEnd, the master killed (-9) and restarted on its --data_dir.

    FERRY_BIN=build/bin/ferry python3 -m pytest -q tests/store/store_e2e_test.py
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_harness import FERRY, Proc, free_port  # noqa: E402


class Hosts:
    """Test hosts: network namespaces on one bridge, or 127.0.0.1 for every one."""

    def __init__(self, names, isolated):
        self.prefix = {}
        self.ip = {}
        self.namespaces = []
        self.hub = None
        tag = os.getpid() % 200
        if isolated and self._make(names, tag):
            return
        self.cleanup()
        for n in names:
            self.prefix[n] = []
            self.ip[n] = "127.0.0.1"

    def _make(self, names, tag):
        def ip(*args):
            return subprocess.run(["ip", *args], capture_output=True).returncode == 0

        self.hub = "fst-hub-%d" % os.getpid()
        if not ip("netns", "add", self.hub):
            self.hub = None
            return False
        self.namespaces.append(self.hub)
        ok = ip("-n", self.hub, "link", "add", "br0", "type", "bridge") and \
            ip("-n", self.hub, "link", "set", "br0", "up")
        for i, n in enumerate(names):
            ns = "fst-%s-%d" % (n, os.getpid())
            addr = "10.214.%d.%d" % (tag, i + 1)
            ok = ok and ip("netns", "add", ns)
            if not ok:
                return False
            self.namespaces.append(ns)
            a, b = "fsa%d%d" % (tag, i), "fsb%d%d" % (tag, i)
            ok = ip("link", "add", a, "type", "veth", "peer", "name", b) and \
                ip("link", "set", a, "netns", ns) and ip("link", "set", b, "netns", self.hub) and \
                ip("-n", self.hub, "link", "set", b, "master", "br0") and \
                ip("-n", self.hub, "link", "set", b, "up") and \
                ip("-n", ns, "addr", "add", addr + "/24", "dev", a) and \
                ip("-n", ns, "link", "set", a, "up") and ip("-n", ns, "link", "set", "lo", "up")
            if not ok:
                return False
            self.prefix[n] = ["ip", "netns", "exec", ns]
            self.ip[n] = addr
        return ok

    def cleanup(self):
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces = []


class Pool:
    def __init__(self, tmp_path, isolated, protocol, master_args=()):
        self.tmp = tmp_path
        self.protocol = protocol
        self.hosts = Hosts(["master", "a", "b", "client"], isolated)
        self.procs = {}
        port = free_port()
        self.master_addr = "%s:%d" % (self.hosts.ip["master"], port)
        self.start("master", "master", ["master", "--rpc_address", self.hosts.ip["master"],
                                        "--rpc_port", str(port), "--metrics_port", "0",
                                        "--client_ttl", "2", *master_args], "listening on")

    def start(self, name, host, args, ready):
        p = Proc(name, [FERRY, *args], self.tmp / (name + ".log"), prefix=self.hosts.prefix[host])
        self.procs[name] = p
        return p.start(ready=ready, timeout=20)

    def member(self, name, size="64MB"):
        return self.start(name, name, ["store", "member", *self.client_flags(name),
                                       "--global_segment_size", size], "member ready")

    def client_flags(self, host):
        return ["--local_hostname", self.hosts.ip[host], "--master_server_address",
                self.master_addr, "--protocol", self.protocol]

    def cli(self, *args, host="client", timeout=30, extra=()):
        cmd = self.hosts.prefix[host] + [FERRY, "store", args[0], *self.client_flags(host),
                                         *extra, *args[1:]]
        return subprocess.run(cmd, capture_output=True, timeout=timeout)

    def signal(self, name, sig):
        self.procs[name].signal(sig)

    def close(self):
        for p in self.procs.values():
            p.kill()
        self.hosts.cleanup()


@pytest.fixture
def pool_factory(tmp_path):
    pools = []

    def make(*args, **kwargs):
        pools.append(Pool(tmp_path, *args, **kwargs))
        return pools[-1]

    yield make
    for p in pools:
        p.close()


def put_file(pool, key, data, *extra):
    path = pool.tmp / ("in-" + key)
    path.write_bytes(data)
    return pool.cli("put", key, "--file", str(path), *extra)


def get_bytes(pool, key, **kw):
    out = pool.tmp / ("out-" + key)
    if out.exists():
        out.unlink()
    r = pool.cli("get", key, "--out", str(out), **kw)
    return r, (out.read_bytes() if r.returncode == 0 else None)


@pytest.mark.parametrize("isolated, protocol", [(True, "tcp"), (False, "shm")],
                         ids=["tcp-netns", "shm-local"])
def test_two_members_a_client_and_a_member_killed(pool_factory, isolated, protocol):
    pool = pool_factory(isolated, protocol)
    pool.member("a")
    pool.member("b")
    value = os.urandom(3 << 20) + b"tail"
    r = put_file(pool, "two", value, "--replicas", "2")
    assert r.returncode == 0, r.stderr
    r = put_file(pool, "small", b"hello pool")
    assert r.returncode == 0, r.stderr
    r, got = get_bytes(pool, "two")
    assert r.returncode == 0, r.stderr
    assert got == value
    ls = pool.cli("ls").stdout.decode()
    assert re.search(r"^two\t%d\tcomplete\t2$" % len(value), ls, re.M), ls
    # A first writer wins: a second put succeeds and keeps the first value.
    assert put_file(pool, "small", b"other").returncode == 0
    assert get_bytes(pool, "small")[1] == b"hello pool"

    # Kill -9 the member that holds "small"; "two" keeps its other replica.
    pool.signal("a", signal.SIGKILL)
    r, got = get_bytes(pool, "two", extra=["--transfer_timeout_ms", "3000"])
    assert r.returncode == 0, r.stderr
    assert got == value
    # Whether "small" was on a or b, a get either returns its exact bytes or fails clearly.
    r, got = get_bytes(pool, "small", extra=["--transfer_timeout_ms", "3000"])
    assert (r.returncode == 0 and got == b"hello pool") or \
        re.search(rb"TRANSFER_FAIL|OBJECT_NOT_FOUND", r.stderr), r.stderr
    # After client_ttl the master drops the dead member's objects that had no other copy.
    deadline = time.time() + 10
    while time.time() < deadline:
        ls = pool.cli("ls").stdout.decode()
        if re.search(r"^two\t\d+\tcomplete\t1$", ls, re.M):
            break
        time.sleep(0.3)
    assert re.search(r"^two\t\d+\tcomplete\t1$", ls, re.M), ls
    assert pool.cli("rm", "--all", "--force").returncode == 0
    assert pool.cli("ls").stdout == b""


def test_paused_member_fails_over_within_the_deadline(pool_factory):
    pool = pool_factory(False, "tcp")
    pool.member("a")
    pool.member("b")
    value = os.urandom(1 << 20)
    assert put_file(pool, "k", value, "--replicas", "2").returncode == 0
    pool.signal("a", signal.SIGSTOP)
    try:
        start = time.time()
        r, got = get_bytes(pool, "k", extra=["--transfer_timeout_ms", "1500"], timeout=20)
        assert r.returncode == 0, r.stderr
        assert got == value
        assert time.time() - start < 10
    finally:
        pool.signal("a", signal.SIGCONT)


def test_client_killed_between_put_start_and_put_end(pool_factory):
    pool = pool_factory(False, "tcp", master_args=["--put_start_discard_timeout_sec", "1",
                                                   "--put_start_release_timeout_sec", "2"])
    pool.member("a")
    path = pool.tmp / "big"
    path.write_bytes(os.urandom(1 << 20))
    cmd = [FERRY, "store", "put", "stuck", "--file", str(path), *pool.client_flags("client"),
           "--fault", "delay_ms=20000"]
    writer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    writer.kill()
    writer.wait(timeout=10)
    # Never readable half-written.
    r, _ = get_bytes(pool, "stuck")
    assert r.returncode == 1 and re.search(rb"REPLICA_IS_NOT_READY|OBJECT_NOT_FOUND", r.stderr)
    # Reclaimed after the discard timeout: the key is writable again, by anyone.
    deadline = time.time() + 15
    while True:
        r = put_file(pool, "stuck", b"second writer")
        if r.returncode == 0 and get_bytes(pool, "stuck")[1] == b"second writer":
            break
        assert time.time() < deadline, r.stderr
        time.sleep(0.5)


def test_master_killed_and_restarted_on_its_data_dir(pool_factory, tmp_path):
    data_dir = str(tmp_path / "meta")
    args = ["--data_dir", data_dir]
    pool = pool_factory(False, "tcp", master_args=args)
    pool.member("a")
    acked = {}
    for i, size in enumerate([1, 4096, 100000, 1 << 20, 3 << 20]):
        value = os.urandom(size)
        r = put_file(pool, "k%d" % i, value)
        assert r.returncode == 0, r.stderr
        acked["k%d" % i] = value
    assert pool.cli("rm", "k0").returncode == 0
    del acked["k0"]

    # kill -9: only what the log had fsync'ed before each reply is left.
    pool.signal("master", signal.SIGKILL)
    pool.procs["master"].wait(timeout=10)
    port = pool.master_addr.rsplit(":", 1)[1]
    pool.start("master2", "master", ["master", "--rpc_address", pool.hosts.ip["master"],
                                     "--rpc_port", port, "--metrics_port", "0",
                                     "--client_ttl", "2", *args], "listening on")
    for key, value in acked.items():
        r, got = get_bytes(pool, key)
        assert r.returncode == 0, r.stderr
        assert got == value, key
    r, _ = get_bytes(pool, "k0")
    assert r.returncode == 1 and b"OBJECT_NOT_FOUND" in r.stderr, r.stderr
    # Puts go to the segment once the member has mounted it again (its next Ping).
    fresh = os.urandom(2 << 20)
    deadline = time.time() + 15
    while True:
        r = put_file(pool, "fresh", fresh)
        if r.returncode == 0:
            break
        assert time.time() < deadline, r.stderr
        time.sleep(0.3)
    assert get_bytes(pool, "fresh")[1] == fresh
    for key, value in acked.items():  # the new put overwrote none of them
        assert get_bytes(pool, key)[1] == value, key
    # Past client_ttl the re-mounted segment is kept: nothing was dropped.
    time.sleep(2.5)
    ls = pool.cli("ls").stdout.decode()
    assert len(ls.splitlines()) == len(acked) + 1, ls


@pytest.mark.parametrize("args, message", [
    (["member", "--global_segment_size", "50%"], b"--global_segment_size"),
    (["member", "--global_segment_size", "1XB"], b"unknown unit"),
    (["put", "k", "--value", "v", "--protocol", "pigeon"], b"pigeon"),
    (["put", "k"], b"exactly one of"),
    (["get"], b"key"),
    (["member", "--bogus"], b"--bogus"),
])
def test_bad_flags(args, message):
    r = subprocess.run([FERRY, "store", *args, "--master_server_address", "127.0.0.1:1",
                        "--rpc_timeout_ms", "300"], capture_output=True, timeout=20)
    assert r.returncode != 0
    assert message in r.stdout + r.stderr, r.stderr


def test_unreachable_master_is_a_clear_error():
    r = subprocess.run([FERRY, "store", "get", "k", "--master_server_address", "127.0.0.1:1",
                        "--rpc_timeout_ms", "500"], capture_output=True, timeout=20)
    assert r.returncode == 1
    assert b"RPC_FAIL" in r.stderr
