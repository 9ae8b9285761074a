"""The master's high availability with real processes: an etcd, three `ferry master`s in HA
mode (one leader holding an etcd lease, the others standby; --ha_lease_ttl 2s), two
`ferry store member`s and one long-running client (tests/store/ha_client_worker.py, the
ferry.store Python module, one process for the whole test). Faults: the leader killed -9
again and again, the leader paused (SIGSTOP) past its lease and resumed, a put in flight
(PutStart answered, bytes late) across a failover, one put issued at each kill, etcd paused
or killed and restarted; flags that are wrong.

What must hold: every acknowledged object stays readable and byte-exact across every
failover, no get returns another object's bytes (a region allocated twice), the same client
recovers without being restarted, a deposed leader reports standby and never applies a
write, and an etcd outage is a clear error in bounded time, then heals.

    FERRY_BIN=build/bin/ferry PYTHONPATH=build/python \
        python3 -m pytest -q tests/store/store_ha_e2e_test.py
"""

import hashlib
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from signal import SIGCONT, SIGSTOP

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from store_harness import (ETCD, FERRY, Etcd, Proc, free_port, http_get,  # noqa: E402
                           http_json, wait_for)

LEASE_TTL = "2s"
TAKEOVER_S = 15  # generous on 2 loaded cores; bench/store_failover_bench.py measures it
ERROR_NAME = re.compile(rb"[A-Z]{3,}(_[A-Z]+)+")  # RPC_FAIL, ETCD_OPERATION_ERROR, ...

pytestmark = pytest.mark.skipif(not os.path.exists(ETCD), reason="no etcd binary")
_cluster_ids = itertools.count()


def python_path():
    """Where ferry.store is importable from: PYTHONPATH, else the build tree next to
    FERRY_BIN (build/bin/ferry -> build/python)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    parts.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(FERRY))),
                              "python"))
    return os.pathsep.join(parts)


_has_store_module = None


def require_store_module():
    global _has_store_module
    if _has_store_module is None:
        r = subprocess.run([sys.executable, "-c", "import sys, ferry.store as s; "
                            "sys.exit(0 if s.HAS_STORE else 3)"],
                           env=dict(os.environ, PYTHONPATH=python_path()), capture_output=True,
                           timeout=60)
        _has_store_module = r.returncode == 0
    if not _has_store_module:
        pytest.skip("ferry.store (the Python module with the store client) is not built")


class Master:
    """One `ferry master` in HA mode on fixed free ports (a restart reuses them)."""

    def __init__(self, cluster, index, mooncake_spelling=False):
        self.rpc_port, self.metrics_port = free_port(), free_port()
        self.address = "127.0.0.1:%d" % self.rpc_port
        if mooncake_spelling:
            ha = ["--enable_ha", "--ha_backend_connstring", cluster.etcd.url]
        else:
            ha = ["--etcd_endpoints", cluster.etcd.endpoint]
        self.proc = Proc("master%d" % index, [
            FERRY, "master", "--rpc_address", "127.0.0.1", "--rpc_port", self.rpc_port,
            "--metrics_port", self.metrics_port, *ha, "--cluster_id", cluster.cluster_id,
            "--ha_lease_ttl", LEASE_TTL, "--client_ttl", "10"],
            cluster.tmp / ("master%d.log" % index))

    def start(self):
        self.proc.start(ready=self.healthy, timeout=30)

    def healthy(self):
        return http_get(self.metrics_port, "/health", timeout=3.0)[0] == 200

    def info(self, timeout=3.0):
        """/leader's JSON, or None (not answering). With etcd unreachable it answers after
        about a second (it asks etcd who leads), hence the 3 s."""
        return http_json(self.metrics_port, "/leader", timeout)

    def role(self):
        i = self.info()
        return i and i.get("role")

    def __repr__(self):
        return "<master %s pid %s>" % (self.address, self.proc.popen and self.proc.pid)


class Worker:
    """tests/store/ha_client_worker.py: one client process for the whole test."""

    def __init__(self, cluster, address, rpc_timeout=8.0, **flags):
        self.log = open(cluster.tmp / "worker.log", "a")
        args = [sys.executable, os.path.join(HERE, "ha_client_worker.py"), "--master", address,
                "--rpc_timeout", str(rpc_timeout)]
        for k, v in flags.items():
            args += ["--" + k, str(v)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, start_new_session=True,
                                     env=dict(os.environ, PYTHONPATH=python_path(),
                                              **cluster.env))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        hello = self._next(60)
        assert hello.get("ready"), hello

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the client worker did not answer within %ds" % timeout)
        assert line is not None, "the client worker exited (%s); see worker.log" % \
            self.proc.poll()
        reply = json.loads(line)
        assert "exception" not in reply, reply["exception"]
        return reply

    def ask(self, timeout=120, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._next(timeout)

    def put(self, count, deadline=30):
        r = self.ask(cmd="put", count=count, deadline=deadline, timeout=deadline + 60)
        assert len(r["acked"]) == count, "only %d of %d puts acknowledged in %ds: %s" % (
            len(r["acked"]), count, deadline, r["errors"])
        return r

    def verify(self, at_least=0, deadline=30):
        """Every acknowledged object, byte for byte."""
        v = self.ask(cmd="verify", deadline=deadline, timeout=deadline + 120)
        assert not v["foreign"], "gets returned other objects' bytes: %s" % v["foreign"][:5]
        assert not v["mismatched"], "wrong bytes: %s" % v["mismatched"][:5]
        assert not v["missing"], "acknowledged objects not readable: %s" % \
            list(v["missing"].items())[:5]
        assert v["checked"] >= at_least, v
        return v

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ask(cmd="exit", timeout=30)
                self.proc.wait(timeout=30)
            except (AssertionError, BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class HaCluster:
    """etcd + `masters` HA masters (the last with Mooncake's flag spelling) + members:
    member0 finds the leader through etcd, member1 through the plain list of masters."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cluster_id = "ferry-ha-%d-%d" % (os.getpid(), next(_cluster_ids))
        self.env = {"MC_STORE_CLUSTER_ID": self.cluster_id}
        self.procs = []
        self.workers = []

    def boot(self, masters=3, members=2):
        self.etcd = Etcd(self.tmp, start=False)
        self.procs.append(self.etcd)
        self.etcd.start_and_wait()
        self.masters = [Master(self, i, mooncake_spelling=(i == masters - 1 and i > 0))
                        for i in range(masters)]
        self.procs += [m.proc for m in self.masters]
        for m in self.masters:
            m.start()
        self.leader, self.leader_info = self.wait_leader()
        for m in self.masters:
            if m is not self.leader:
                self.wait_standby(m, self.leader)
        for i in range(members):
            self.member("member%d" % i, self.etcd.url if i % 2 == 0 else self.master_list())

    def master_list(self):
        return ",".join(m.address for m in self.masters)

    def member(self, name, address, size="64MB"):
        p = Proc(name, [FERRY, "store", "member", "--local_hostname", "127.0.0.1",
                        "--master_server_address", address, "--protocol", "tcp",
                        "--global_segment_size", size], self.tmp / (name + ".log"), env=self.env)
        self.procs.append(p)
        p.start(ready="member ready", timeout=30)
        return p

    def worker(self, address=None, **kw):
        w = Worker(self, address or self.etcd.url, **kw)
        self.workers.append(w)
        return w

    def wait_leader(self, exclude=(), above_term=None, timeout=TAKEOVER_S):
        """(master, its /leader JSON) once exactly one running master outside `exclude`
        says leader (with a term above `above_term`)."""
        def find():
            found = []
            for m in self.masters:
                if m in exclude or not m.proc.alive():
                    continue
                i = m.info()
                if i and i.get("role") == "leader":
                    found.append((m, i))
            if len(found) != 1:
                return None
            m, i = found[0]
            if above_term is not None and i["term"] <= above_term:
                return None
            return found[0]
        m, info = wait_for("a leader among %s" % [x for x in self.masters if x not in exclude],
                           find, timeout, interval=0.1)
        assert info["leader"] == m.address, info
        assert info["cluster_id"] == self.cluster_id, info
        assert isinstance(info["term"], int) and isinstance(info["log_position"], int), info
        return m, info

    def wait_standby(self, m, leader, timeout=10):
        """m says standby, naming `leader`."""
        return wait_for("%s to say standby under %s" % (m, leader), lambda: (
            lambda i: i if i and i.get("role") == "standby" and
            i.get("leader") == leader.address else None)(m.info()), timeout, interval=0.1)

    def cli(self, *args, address=None, timeout=30, extra=()):
        cmd = [FERRY, "store", args[0], "--local_hostname", "127.0.0.1",
               "--master_server_address", address or self.etcd.url, "--protocol", "tcp",
               *extra, *args[1:]]
        return subprocess.run(cmd, capture_output=True, timeout=timeout,
                              env=dict(os.environ, **self.env))

    def put(self, key, data, **kw):
        path = self.tmp / ("in-" + key)
        path.write_bytes(data)
        return self.cli("put", key, "--file", str(path), **kw)

    def get(self, key, **kw):
        out = self.tmp / ("out-" + key)
        if out.exists():
            out.unlink()
        r = self.cli("get", key, "--out", str(out), **kw)
        return r, (out.read_bytes() if r.returncode == 0 else None)

    def close(self):
        for w in self.workers:
            w.close()
        for p in reversed(self.procs):
            p.kill()
        for p in self.procs:
            if p.popen is None:
                continue  # shown by pytest when the test failed
            print("----- %s (%s) -----\n%s" % (p.name, p.log_path, p.log(whole=True)[-3000:]))


@pytest.fixture
def ha(tmp_path):
    clusters = []

    def make(**kw):
        clusters.append(HaCluster(tmp_path))  # closed (its logs shown) even if boot fails
        clusters[-1].boot(**kw)
        return clusters[-1]

    yield make
    for c in clusters:
        c.close()


def test_leader_killed_again_and_again(ha):
    require_store_module()
    c = ha()
    w = c.worker(loop_cap=800)
    w.put(30)
    w.ask(cmd="loop_start")
    leader, info = c.leader, c.leader_info
    takeovers = []
    for round_ in range(5):
        acked = w.ask(cmd="count")["acked"]
        t0 = time.monotonic()
        leader.proc.kill()  # -9
        new, new_info = c.wait_leader(exclude=[leader], above_term=info["term"])
        takeovers.append(time.monotonic() - t0)
        leader.start()  # back on its ports, as a standby of the new leader
        c.wait_standby(leader, new)
        # The same client: new puts are acknowledged, and everything acknowledged so far
        # (by the loop too, before, during and after the kill) reads back byte-exact.
        w.put(5, deadline=20)
        w.verify(at_least=acked + 5)
        leader, info = new, new_info
    s = w.ask(cmd="loop_stop")
    assert not s["foreign"] and not s["mismatched"], s
    assert s["puts_ok"] > 0 and s["gets_ok"] > 0, s
    w.verify(at_least=30 + 25)
    print("takeover seconds:", ["%.2f" % t for t in takeovers])
    # Both members follow the fifth leader too: a put with 2 replicas lands once each has
    # re-mounted its segment there (its next Ping: the new leader recovered the segments as
    # awaiting remount).
    value = os.urandom(100000)
    deadline = time.monotonic() + 10
    while True:
        r = c.put("two-replicas", value, extra=["--replicas", "2"])
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr
    assert c.get("two-replicas")[1] == value


def test_paused_leader_loses_its_lease_and_stays_deposed(ha):
    require_store_module()
    c = ha()
    w = c.worker()
    w.put(40)
    old, info = c.leader, c.leader_info
    old.proc.signal(SIGSTOP)
    try:
        new, new_info = c.wait_leader(exclude=[old], above_term=info["term"])
    finally:
        old.proc.signal(SIGCONT)
    # Straight after SIGCONT, a write sent to the deposed leader alone is refused (or
    # forwarded to the new one): never applied where the new leader cannot see it.
    stale = os.urandom(8192)
    r = c.put("sent-to-old", stale, address=old.address, extra=["--rpc_timeout_ms", "3000"])
    print("put sent to the deposed leader: exit %d %s" % (r.returncode, r.stderr[-300:]))
    if r.returncode == 0:
        r2, got = c.get("sent-to-old")
        assert r2.returncode == 0 and got == stale, \
            "the deposed leader acknowledged a write the new leader does not have: %s" % \
            r2.stderr
    else:
        assert ERROR_NAME.search(r.stderr), r.stderr
    c.wait_standby(old, new)
    # The plain list with a standby first: the standby refuses, the client retries on the
    # leader.
    standby_first = ",".join([old.address, new.address])
    after = os.urandom(50000)
    r = c.put("after-takeover", after, address=standby_first)
    assert r.returncode == 0, r.stderr
    r, got = c.get("after-takeover", address=standby_first)
    assert r.returncode == 0 and got == after, r.stderr
    # Many distinct objects after the takeover: none lands on a region already in use.
    w.put(120)
    w.verify(at_least=160)
    assert c.get("after-takeover")[1] == after
    # The old leader stayed deposed.
    assert old.role() == "standby"
    assert c.wait_leader()[0] is new


def test_put_in_flight_across_a_failover(ha):
    """PutStart answered by the old leader, the bytes still on their way (a 6 s transfer
    delay), the leader killed. Objects put through the new leader meanwhile stay byte-exact
    after the late bytes land (their region is not the one the late put still writes), and
    the in-flight put completes on the new leader within its deadline."""
    require_store_module()
    c = ha(masters=2, members=1)
    w = c.worker(min_size=64 << 10, max_size=64 << 10)
    w.put(5)
    value = os.urandom(64 << 10)
    path = c.tmp / "in-flight"
    path.write_bytes(value)
    cmd = [FERRY, "store", "put", "in-flight", "--file", str(path), "--local_hostname",
           "127.0.0.1", "--master_server_address", c.etcd.url, "--protocol", "tcp",
           "--rpc_timeout_ms", "15000", "--fault", "delay_ms=6000"]
    writer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, **c.env))
    time.sleep(1.5)  # its PutStart is answered
    old, info = c.leader, c.leader_info
    old.proc.kill()
    c.wait_leader(exclude=[old], above_term=info["term"])
    w.put(40, deadline=20)  # through the new leader, before the late bytes land
    _, err = writer.communicate(timeout=60)
    print("in-flight put: exit %d %s (its value's sha256 %s)" % (
        writer.returncode, err[-300:], hashlib.sha256(value).hexdigest()[:16]))
    w.verify(at_least=45)
    assert writer.returncode == 0, \
        "a put in flight across the failover failed instead of being retried: %s" % err
    r, got = c.get("in-flight")
    assert r.returncode == 0 and got == value, r.stderr


def test_one_put_spans_each_failover(ha):
    """Two masters killed in turn, each restarted on its address: one put issued at each
    kill (the client retries it on the new leader) succeeds within the lease plus 3 s."""
    require_store_module()
    c = ha(masters=2, members=1)
    w = c.worker(rpc_timeout=8.0)
    w.put(3)
    leader, info = c.leader, c.leader_info
    results = []
    for _ in range(4):
        t0 = time.monotonic()
        leader.proc.kill()
        r = w.ask(cmd="put", count=1, deadline=0.1, timeout=60)  # one attempt
        results.append((bool(r["acked"]), round(time.monotonic() - t0, 2), r["errors"]))
        new, info = c.wait_leader(exclude=[leader], above_term=info["term"])
        w.put(2, deadline=20)
        leader.start()
        c.wait_standby(leader, new)
        leader = new
    w.verify(at_least=3 + 4 * 2)
    print("one put per failover (ok, seconds, errors):", results)
    assert all(ok and took < 5.0 for ok, took, _ in results), results


@pytest.mark.parametrize("outage", ["paused", "killed"])
def test_etcd_unreachable_is_a_bounded_error_then_heals(ha, outage):
    require_store_module()
    c = ha(masters=2, members=1)
    w = c.worker(rpc_timeout=3.0)
    w.put(30)
    if outage == "paused":
        c.etcd.signal(SIGSTOP)
    else:
        c.etcd.kill()
    healed = False
    try:
        # The long-running client: a put fails, in bounded time.
        t0 = time.monotonic()
        r = w.ask(cmd="put", count=1, deadline=0.1, timeout=60)
        took = time.monotonic() - t0
        assert r["acked"] == [], "a put was acknowledged with etcd unreachable: %s" % r
        assert r["errors"] and took < 20, (took, r)
        # New clients, through the masters' list (no etcd needed to find them) and etcd.
        for address in (c.master_list(), c.etcd.url):
            t0 = time.monotonic()
            r = c.put("during-outage", b"x" * 1000, address=address,
                      extra=["--rpc_timeout_ms", "3000"], timeout=60)
            took = time.monotonic() - t0
            assert r.returncode != 0, "put acknowledged with etcd unreachable (%s)" % address
            assert ERROR_NAME.search(r.stderr) and took < 20, (address, took, r.stderr)
        # The masters stay up (standby: nobody holds the lease).
        wait_for("every master to say standby", lambda: all(
            m.role() == "standby" for m in c.masters), 15, interval=0.2)
        assert all(m.proc.alive() and m.healthy() for m in c.masters)
        if outage == "paused":
            c.etcd.signal(SIGCONT)
        else:
            c.etcd.restart()
        healed = True
        t0 = time.monotonic()
        r = w.put(3, deadline=30)
        print("first put after etcd came back: %.2fs" % (time.monotonic() - t0))
    finally:
        if not healed and outage == "paused":
            c.etcd.signal(SIGCONT)
    c.wait_leader()
    w.verify(at_least=33)
    r = c.put("after-outage", b"back")
    assert r.returncode == 0, r.stderr
    assert c.get("after-outage")[1] == b"back"


@pytest.mark.parametrize("args, messages", [
    (["--etcd_endpoints", "127.0.0.1:notaport"], ["--etcd_endpoints", "notaport"]),
    (["--etcd_endpoints", "127.0.0.1:70000"], ["--etcd_endpoints", "70000"]),
    (["--etcd_endpoints", "127.0.0.1:2379,:"], ["--etcd_endpoints"]),
    (["--enable_ha"], ["--ha_backend_connstring"]),
    (["--enable_ha", "--ha_backend_connstring", "etcd://127.0.0.1:notaport"],
     ["--ha_backend_connstring", "notaport"]),
])
def test_bad_ha_flags_are_clear_errors(args, messages):
    p = subprocess.run([FERRY, "master", "--rpc_port", "0", "--metrics_port", "0", *args],
                       capture_output=True, text=True, timeout=15)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "not expected" not in out and "unrecognized" not in out, \
        "the HA flags are unknown to this ferry master: " + out
    assert any(m in out for m in messages), out


def test_ha_flags_are_listed_in_help():
    out = subprocess.run([FERRY, "master", "--help"], capture_output=True, text=True,
                         timeout=15).stdout
    for flag in ("--etcd_endpoints", "--cluster_id", "--ha_lease_ttl", "--enable_ha",
                 "--ha_backend_connstring"):
        assert flag in out, flag


def test_unreachable_etcd_for_a_client_is_a_clear_error():
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = subprocess.run([FERRY, "store", "get", "k", "--master_server_address",
                        "etcd://127.0.0.1:%d" % port, "--rpc_timeout_ms", "1000"],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert ERROR_NAME.search(r.stderr), r.stderr
    assert time.monotonic() - t0 < 25
