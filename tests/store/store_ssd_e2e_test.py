"""The store's SSD tier with real processes: `ferry master --enable_offload`, `ferry store
member --enable_ssd_offload --ssd_offload_path DIR` (bucket files on a real directory),
clients (`ferry store put|get|ls|rm`, and tests/store/ssd_client_worker.py, a Python process
on mooncake.store). Faults: the member killed -9 while it offloads and restarted on its
directory, a bucket file corrupted by hand (member running, and stopped), a disk that fills
up (a 4 MiB tmpfs), --ssd_capacity, the master killed -9 and restarted on its --data_dir,
an upsert or a removal followed by the disk's member restarting, concurrent readers.

What must hold: an object evicted from DRAM becomes disk-only instead of disappearing and
reads back byte-exact from any process, also one that cannot see the owner's directory; a
disk-only object read often enough gets a memory copy again, after which reads stop
touching the disk; after a crash every object the member re-registers is byte-exact, no
temp file is left and nothing reads as garbage; a corrupt object fails with a checksum error
while its neighbours still read; a full disk only makes offloads fail (counted), DRAM keeps
working; the pool lists only what reads; a removed or replaced value never comes back.

    FERRY_BIN=build/bin/ferry PYTHONPATH=build/python \
        python3 -m pytest -q tests/store/store_ssd_e2e_test.py
"""

import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from store_harness import FERRY, Proc, free_port, http_get, http_json, wait_for  # noqa: E402

MiB = 1 << 20
ERROR_NAME = re.compile(rb"[A-Z]{3,}(_[A-Z]+)+")  # OBJECT_NOT_FOUND, FILE_READ_FAIL, ...


def python_path():
    """Where ferry.store / mooncake.store import from: PYTHONPATH, else the build tree next
    to FERRY_BIN (build/bin/ferry -> build/python)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    parts.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(FERRY))),
                              "python"))
    return os.pathsep.join(parts)


# --- Prometheus text ------------------------------------------------------------------
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`; None when there is none."""
    total, seen = 0.0, False
    for line in (text or "").splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


# --- bucket files (src/store/disk/bucket_store.h) ---------------------------------------
FOOTER_BYTES = 40
FOOTER_MAGIC = b"FERRYBKF"


def bucket_files(d):
    """The finished bucket files in d: *.bucket, or bucket.<id>."""
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if os.path.isfile(os.path.join(d, n)) and
                  (n.endswith(".bucket") or re.fullmatch(r"bucket\.\d+", n)))


def temp_files(d):
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if "tmp" in n.lower())


def bucket_index(path):
    """{key: (offset, length)} of a bucket file from its footer and index; None when the
    file does not parse (then the format changed: see bucket_store.h)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FOOTER_BYTES or data[-8:] != FOOTER_MAGIC:
        return None
    index_offset, index_length, count = struct.unpack_from("<QQQ", data, len(data) - FOOTER_BYTES)
    if index_offset + index_length > len(data) - FOOTER_BYTES:
        return None
    out, pos = {}, index_offset
    for _ in range(count):
        (klen,) = struct.unpack_from("<I", data, pos)
        key = data[pos + 4:pos + 4 + klen].decode()
        offset, length, _checksum = struct.unpack_from("<QQQ", data, pos + 4 + klen)
        pos += 4 + klen + 24
        out[key] = (offset, length)
    return out


def flip_bytes(path, offset, n=64):
    """Inverts n bytes of the file at offset (through a separate descriptor, like a bad disk
    or a stray writer would)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))
        f.flush()
        os.fsync(f.fileno())


# --- the pool -------------------------------------------------------------------------
class Worker:
    """tests/store/ssd_client_worker.py: one Python client process."""

    def __init__(self, pool, name, segment="0", ssd_dir="", setup="positional"):
        self.log = open(pool.tmp / (name + ".log"), "a")
        args = [sys.executable, os.path.join(HERE, "ssd_client_worker.py"), "--master",
                pool.master_addr, "--segment", segment, "--setup", setup]
        if ssd_dir:
            args += ["--ssd_dir", str(ssd_dir)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, start_new_session=True,
                                     env=dict(os.environ, PYTHONPATH=python_path(),
                                              PYTHONDONTWRITEBYTECODE="1"))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        hello = self.answer(60)
        assert hello.get("ready"), hello

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def answer(self, timeout=120):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the client worker did not answer within %ds" % timeout)
        assert line is not None, "the client worker exited (%s); see its log" % self.proc.poll()
        reply = json.loads(line)
        assert "exception" not in reply, reply["exception"]
        return reply

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def ask(self, timeout=120, **cmd):
        self.send(**cmd)
        return self.answer(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send(cmd="exit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()


class SsdPool:
    """A master on 127.0.0.1 (fixed free ports), members, CLI and Python clients; all tcp."""

    def __init__(self, tmp, master_args=(), client_ttl=2):
        self.tmp = tmp
        self.vals = tmp / "vals"
        self.vals.mkdir(exist_ok=True)
        self.procs, self.member_ports, self.workers, self.mounts = {}, {}, [], []
        self.rpc_port, self.metrics_port = free_port(), free_port()
        self.master_addr = "127.0.0.1:%d" % self.rpc_port
        self.master = Proc("master", [
            FERRY, "master", "--rpc_address", "127.0.0.1", "--rpc_port", self.rpc_port,
            "--metrics_port", self.metrics_port, "--client_ttl", client_ttl, *master_args],
            tmp / "master.log")
        self.procs["master"] = self.master
        self.master.start(ready="listening on", timeout=20)

    def member(self, name, size, ssd_dir=None, extra=(), env=None):
        port = free_port()
        args = [FERRY, "store", "member", "--local_hostname", "127.0.0.1",
                "--master_server_address", self.master_addr, "--protocol", "tcp",
                "--global_segment_size", size, "--metrics_port", port]
        if ssd_dir is not None:
            args += ["--enable_ssd_offload", "--ssd_offload_path", str(ssd_dir)]
        p = Proc(name, [*args, *extra], self.tmp / (name + ".log"), env=env)
        self.procs[name] = p
        self.member_ports[name] = port
        p.start(ready="member ready", timeout=20)
        return p

    def restart(self, name):
        p = self.procs[name]
        if p.alive():
            p.kill()
        p.start(ready="member ready", timeout=20)

    def worker(self, name="reader", **kw):
        w = Worker(self, name, **kw)
        self.workers.append(w)
        return w

    # --- data ---
    def value(self, key, size):
        """Fresh random bytes for key, kept as the file vals/key (what workers put)."""
        data = os.urandom(size)
        (self.vals / key).write_bytes(data)
        return data

    def expected(self, key):
        return (self.vals / key).read_bytes()

    # --- CLI ---
    def cli(self, *args, timeout=30, extra=()):
        cmd = [FERRY, "store", args[0], "--local_hostname", "127.0.0.1",
               "--master_server_address", self.master_addr, "--protocol", "tcp", *extra,
               *args[1:]]
        return subprocess.run(cmd, capture_output=True, timeout=timeout)

    def put(self, key):
        return self.cli("put", key, "--file", str(self.vals / key))

    def get(self, key, **kw):
        out = self.tmp / "out.bin"
        if out.exists():
            out.unlink()
        r = self.cli("get", key, "--out", str(out), **kw)
        return r, (out.read_bytes() if r.returncode == 0 else None)

    def assert_reads_exact(self, key):
        r, got = self.get(key)
        assert r.returncode == 0, (key, r.stderr)
        assert got == self.expected(key), "%s: %d bytes differ from what was put" % (
            key, len(got))

    def ls(self):
        r = self.cli("ls")
        assert r.returncode == 0, r.stderr
        rows = {}
        for line in r.stdout.decode().splitlines():
            fields = line.split("\t")
            rows[fields[0]] = fields[1:]
        return rows

    # --- the master's and members' pages ---
    def query(self, key):
        return http_json(self.metrics_port, "/query_key?key=" + urllib.parse.quote(key),
                         timeout=3.0)

    def tiers(self, key):
        """Sorted tiers of the key's replicas ("memory", "local_disk"); None if absent."""
        q = self.query(key)
        if q is None:
            return None
        return sorted(r.get("tier", "?") for r in q["replicas"])

    def master_metrics(self):
        status, body = http_get(self.metrics_port, "/metrics", timeout=3.0)
        assert status == 200, body
        return body

    def master_metric(self, name, **labels):
        return metric(self.master_metrics(), name, **labels)

    def member_metrics(self, name):
        status, body = http_get(self.member_ports[name], "/metrics", timeout=3.0)
        return body if status == 200 else None

    def member_metric(self, member, name, **labels):
        return metric(self.member_metrics(member), name, **labels)

    def close(self):
        for w in self.workers:
            w.close()
        for p in self.procs.values():
            p.kill()
        for m in self.mounts:
            subprocess.run(["umount", "-l", str(m)], capture_output=True)


@pytest.fixture
def pool_factory(tmp_path):
    pools = []

    def make(*args, **kwargs):
        pools.append(SsdPool(tmp_path, *args, **kwargs))
        return pools[-1]

    yield make
    for p in pools:
        p.close()


def settle(fn, quiet=1.0, timeout=20):
    """fn()'s value once it has stayed the same for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = fn(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = fn()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError("still changing after %ds: %r" % (timeout, last))


# Master flags of the suites that evict: reads hold an object's lease only briefly (the
# default 10 s would keep just-read objects from being evicted), and eviction starts well
# before the segment is full, so that offloads can catch up with the puts.
EVICT_EARLY = ["--eviction_high_watermark_ratio", "0.7", "--eviction_ratio", "0.3",
               "--default_kv_lease_ttl", "100"]


def test_evicted_objects_become_disk_only_and_read_back(pool_factory, tmp_path):
    pool = pool_factory(["--enable_offload", *EVICT_EARLY])
    disk = tmp_path / "a"
    pool.member("a", "32MB", ssd_dir=disk)
    keys = ["obj%02d" % i for i in range(64)]
    for k in keys:
        pool.value(k, MiB)
    acked, failed = [], {}
    for k in keys:
        r = pool.put(k)
        if r.returncode == 0:
            acked.append(k)
        else:
            failed[k] = r.stderr.decode(errors="replace").strip()
    assert len(acked) >= 60, "only %d of 64 puts succeeded: %s" % (len(acked), failed)

    # Nothing disappeared: every acknowledged object is still in the pool (64 MiB were put
    # into 32 MiB of DRAM: the rest went to disk).
    tiers = settle(lambda: {k: pool.tiers(k) for k in acked})
    assert all(tiers[k] is not None for k in acked), \
        [k for k in acked if tiers[k] is None]
    assert set(pool.ls()) == set(acked)
    for k in acked:
        assert tiers[k] in (["memory"], ["local_disk"], ["local_disk", "memory"]), (k, tiers[k])
    disk_only = [k for k in acked if tiers[k] == ["local_disk"]]
    in_memory = [k for k in acked if "memory" in tiers[k]]
    on_disk = [k for k in acked if "local_disk" in tiers[k]]
    print("%d of 64 puts acknowledged; %d disk-only, %d in memory, %d with both copies" % (
        len(acked), len(disk_only), len(in_memory), len(set(in_memory) & set(on_disk))))
    assert in_memory, tiers
    assert len(disk_only) >= len(acked) - 32, (len(disk_only), tiers)

    # The counters agree with the replicas.
    m = pool.master_metrics()
    assert metric(m, "ferry_store_offloads_total") >= len(on_disk) > 0, m
    assert metric(m, "ferry_store_tier_objects", tier="local_disk") == len(on_disk), m
    assert metric(m, "ferry_store_tier_objects", tier="memory") == len(in_memory), m
    assert metric(m, "ferry_store_tier_bytes", tier="local_disk") == len(on_disk) * MiB, m
    assert metric(m, "ferry_store_tier_bytes", tier="memory") == len(in_memory) * MiB, m
    assert pool.member_metric("a", "ferry_store_disk_objects") == len(on_disk)
    assert pool.member_metric("a", "ferry_store_disk_offloads_total") >= len(on_disk)
    assert bucket_files(disk), os.listdir(disk)
    assert temp_files(disk) == []

    # Byte-exact from a CLI process each...
    readbacks = pool.member_metric("a", "ferry_store_disk_readbacks_total") or 0
    for k in acked:
        pool.assert_reads_exact(k)
    assert pool.member_metric("a", "ferry_store_disk_readbacks_total") >= \
        readbacks + len(disk_only)
    assert pool.master_metric("ferry_store_disk_readbacks_total") >= len(disk_only)
    # Only the owner opens its files: a reader that cannot see the directory (its own mount
    # namespace, a tmpfs over it) still gets disk-only objects.
    hidden = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs tmpfs "$0" && exec "$@"', str(disk)]
    probe = subprocess.run([*hidden, "ls", str(disk)], capture_output=True, timeout=10)
    if probe.returncode == 0:
        assert probe.stdout == b"", probe.stdout  # the bucket files are out of its sight
        for k in disk_only[:4]:
            out = tmp_path / "hidden.bin"
            r = subprocess.run([*hidden, FERRY, "store", "get", k, "--local_hostname",
                                "127.0.0.1", "--master_server_address", pool.master_addr,
                                "--protocol", "tcp", "--out", str(out)],
                               capture_output=True, timeout=30)
            assert r.returncode == 0, (k, r.stderr)
            assert out.read_bytes() == pool.expected(k), k
    else:
        print("no mount namespace (%s): the hidden-directory reader is skipped" %
              probe.stderr.decode(errors="replace").strip())
    # ... and from one long-lived second reader (mooncake.store).
    reader = pool.worker()
    got = reader.ask(cmd="get", dir=str(pool.vals), keys=acked)
    assert got["mismatched"] == {} and got["failed"] == {}, got
    assert sorted(got["exact"]) == sorted(acked)
    # Its replica descriptors: the SSD tier is a local disk, not Mooncake's shared DISK.
    desc = reader.ask(cmd="desc", keys=[disk_only[0], in_memory[0]])
    assert desc[disk_only[0]] == [{"memory": False, "disk": False, "local_disk": True,
                                   "status": "COMPLETE"}], desc
    assert {"memory": True, "disk": False, "local_disk": False, "status": "COMPLETE"} in \
        desc[in_memory[0]], desc
    # Reads do not promote without --promotion_on_hit.
    assert pool.tiers(disk_only[0]) == ["local_disk"]


def test_a_disk_only_object_read_twice_is_promoted(pool_factory, tmp_path):
    pool = pool_factory(["--enable_offload", "--promotion_on_hit",
                         "--promotion_admission_threshold", "2", *EVICT_EARLY])
    disk = tmp_path / "a"
    # The directory through Mooncake's environment variable (it also enables the tier).
    pool.member("a", "16MB", env={"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH": str(disk)})
    pool.value("hot", MiB)
    assert pool.put("hot").returncode == 0
    # Fill DRAM until "hot", the least recently used, has been evicted to disk.
    for i in range(48):
        if pool.tiers("hot") == ["local_disk"]:
            break
        k = "fill%02d" % i
        pool.value(k, MiB)
        pool.put(k)  # may fail while DRAM is full: what matters is that "hot" moves
    wait_for("hot to be disk-only", lambda: pool.tiers("hot") == ["local_disk"], 15)
    assert bucket_files(disk), "no bucket in MOONCAKE_OFFLOAD_FILE_STORAGE_PATH"

    # One read is below the admission threshold: no promotion.
    pool.assert_reads_exact("hot")
    time.sleep(1.0)
    assert pool.tiers("hot") == ["local_disk"], "promoted after a single read"
    # The second read admits it: a memory copy appears (the disk copy may stay).
    pool.assert_reads_exact("hot")
    wait_for("hot to regain a memory replica", lambda: "memory" in (pool.tiers("hot") or []),
             10)
    assert pool.master_metric("ferry_store_promotions_total") >= 1
    assert pool.member_metric("a", "ferry_store_disk_promotions_total") >= 1
    assert pool.master_metric("ferry_store_disk_readbacks_total") >= 2
    # From now on reads come from memory: the member's disk is not read again.
    readbacks = pool.member_metric("a", "ferry_store_disk_readbacks_total")
    assert readbacks is not None and readbacks >= 2
    for _ in range(3):
        pool.assert_reads_exact("hot")
    assert pool.member_metric("a", "ferry_store_disk_readbacks_total") == readbacks
    assert "memory" in pool.tiers("hot")


def test_concurrent_readers_of_disk_only_objects_never_get_foreign_bytes(pool_factory,
                                                                        tmp_path):
    """Two reader processes, four threads each, get random objects of a working set four
    times the DRAM (most disk-only; promotion on, so objects move between the tiers while
    they read): every answer is the key's exact bytes; none is another object's (staging
    memory handed out twice); nothing fails but (rarely) a read whose lease ran out."""
    # A read lease long enough for 8 threads on two loaded cores (a get whose lease runs
    # out before its bytes arrive is refused, LEASE_EXPIRED: clean, but not what this is
    # about).
    pool = pool_factory(["--enable_offload", "--promotion_on_hit",
                         "--eviction_high_watermark_ratio", "0.7", "--eviction_ratio", "0.3",
                         "--default_kv_lease_ttl", "2000"])
    pool.member("a", "8MB", ssd_dir=tmp_path / "a")
    keys = ["s%03d" % i for i in range(128)]  # 32 MiB
    for k in keys:
        pool.value(k, 256 << 10)
    writer = pool.worker("writer")
    put = writer.ask(cmd="put", dir=str(pool.vals), keys=keys)
    assert sorted(put["ok"]) == sorted(keys), put["failed"]
    tiers = settle(lambda: {k: pool.tiers(k) for k in keys})
    assert sum(t == ["local_disk"] for t in tiers.values()) >= 64, tiers
    readers = [writer, pool.worker("reader2")]
    for r in readers:
        r.send(cmd="stress", dir=str(pool.vals), keys=keys, threads=4, seconds=6)
    results = [r.answer(60) for r in readers]
    for got in results:
        assert got["foreign"] == [], got["foreign"][:5]
        assert got["mismatched"] == [], got["mismatched"][:5]
        unclean = {k: m for k, m in got["failed"].items() if "LEASE_EXPIRED" not in m}
        assert unclean == {}, unclean
        assert got["exact"] >= 0.98 * got["gets"] > 0, got
    print("%d gets, promotions %s, disk readbacks %s" % (
        sum(g["gets"] for g in results), pool.master_metric("ferry_store_promotions_total"),
        pool.member_metric("a", "ferry_store_disk_readbacks_total")))


def test_a_paused_owner_is_a_clean_error_in_bounded_time(pool_factory, tmp_path):
    """The owner of a disk-only object stopped (SIGSTOP): a get fails with an error name
    within its deadlines instead of hanging, and reads again once the owner resumes."""
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=30)  # not dropped
    pool.member("a", "16MB", ssd_dir=tmp_path / "a")
    keys = offload_together(pool, tmp_path / "a", ["p%d" % i for i in range(4)])
    pool.procs["a"].stop()  # unmounts: the memory copies go at once
    pool.restart("a")  # the disk copies are registered again
    wait_for("disk-only objects", lambda: all(pool.tiers(k) == ["local_disk"] for k in keys),
             20)
    pool.procs["a"].signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        r, got = pool.get(keys[0], extra=["--rpc_timeout_ms", "2000",
                                          "--transfer_timeout_ms", "2000"])
        took = time.monotonic() - start
        assert r.returncode == 1 and got is None, r.stdout[:100]
        assert ERROR_NAME.search(r.stderr), r.stderr
        assert took < 15, "the get took %.1fs against a paused owner" % took
    finally:
        pool.procs["a"].signal(signal.SIGCONT)
    for k in keys:
        pool.assert_reads_exact(k)


def test_member_killed_while_it_offloads_restarts_on_its_directory(pool_factory, tmp_path):
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=2)
    disk = tmp_path / "a"
    member = pool.member("a", "64MB", ssd_dir=disk)
    keys = ["k%03d" % i for i in range(96)]
    for k in keys:
        pool.value(k, 512 << 10)
    writer = pool.worker("writer")
    # Batches of 8 (one offload batch, one 4 MiB bucket, each): kill -9 once a quarter of
    # the working set is in buckets, while puts (and their offloads) go on.
    writer.send(cmd="put", dir=str(pool.vals), keys=keys, batch=8)

    def bucket_bytes():
        return sum(os.path.getsize(p) for p in bucket_files(disk) if os.path.exists(p))
    deadline = time.monotonic() + 30
    while bucket_bytes() < 12 * MiB and time.monotonic() < deadline:
        time.sleep(0.005)
    member.signal(signal.SIGKILL)
    member.wait(timeout=10)
    put = writer.answer(120)
    assert bucket_files(disk), "no bucket within 30 s"
    print("killed with %d buckets (%d bytes) and temp files %s on disk; %d of %d puts "
          "acknowledged" % (len(bucket_files(disk)), bucket_bytes(), temp_files(disk),
                            len(put["ok"]), len(keys)))
    assert put["ok"], put["failed"]
    # What a crash in the middle of a bucket's write leaves (made by hand, as the kill may
    # have come between two writes): a temp file holding the first half of a bucket.
    first = bucket_files(disk)[0]
    with open(first, "rb") as f:
        half = f.read(os.path.getsize(first) // 2)
    (disk / "bucket.00000000000000099999.tmp").write_bytes(half)

    # Past client_ttl the master has dropped the dead member's segment; the member comes
    # back on the same directory and registers what its disk holds.
    time.sleep(3)
    pool.restart("a")
    assert temp_files(disk) == [], "temp files survived the restart"
    on_disk = {}
    for path in bucket_files(disk):
        index = bucket_index(path)
        assert index is not None, "%s does not parse as a bucket" % path
        on_disk.update(index)
    assert on_disk, "no complete bucket survived"
    assert set(on_disk) <= set(keys), set(on_disk) - set(keys)
    wait_for("the disk's objects to be registered again", lambda: all(
        "local_disk" in (pool.tiers(k) or []) for k in on_disk), 20)
    tiers = settle(lambda: {k: pool.tiers(k) for k in keys})
    registered = [k for k in keys if "local_disk" in (tiers[k] or [])]
    assert sorted(registered) == sorted(on_disk)
    assert pool.member_metric("a", "ferry_store_disk_objects") == len(registered)

    # Every key: its exact bytes, or a clean error; every re-registered one: exact.
    got = writer.ask(cmd="get", dir=str(pool.vals), keys=keys)
    assert got["mismatched"] == {}, got["mismatched"]
    assert set(registered) <= set(got["exact"]), {k: got["failed"].get(k) for k in registered}
    for k, msg in got["failed"].items():
        assert ERROR_NAME.search(msg.encode()), (k, msg)
    for k in registered[:8]:  # and from a CLI process
        pool.assert_reads_exact(k)
    # The restarted member takes puts again.
    pool.value("after", MiB)
    assert pool.put("after").returncode == 0
    pool.assert_reads_exact("after")


def test_a_corrupt_object_fails_its_checksum_and_its_neighbours_read(pool_factory, tmp_path):
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=2)
    disk = tmp_path / "a"
    pool.member("a", "32MB", ssd_dir=disk)
    keys = ["c%d" % i for i in range(8)]
    for k in keys:
        pool.value(k, 256 << 10)
    writer = pool.worker("writer")
    put = writer.ask(cmd="put", dir=str(pool.vals), keys=keys, batch=True)
    assert sorted(put["ok"]) == sorted(keys), put
    wait_for("every object offloaded", lambda: all(
        "local_disk" in (pool.tiers(k) or []) for k in keys), 15)
    # The bucket holding the most of them.
    indexes = {p: bucket_index(p) for p in bucket_files(disk)}
    assert indexes and all(i is not None for i in indexes.values()), indexes
    path, index = max(indexes.items(), key=lambda pi: len(pi[1]))
    assert len(index) >= 3, "a bucket of one batch holds %d objects: %s" % (
        len(index), {os.path.basename(p): sorted(i) for p, i in indexes.items()})

    # Drop the memory copies (kill -9, restart): every object is disk-only.
    pool.procs["a"].kill()
    time.sleep(3)
    pool.restart("a")
    wait_for("disk-only objects", lambda: all(pool.tiers(k) == ["local_disk"] for k in keys), 20)

    # Corrupted while the member runs: that object fails with a checksum error...
    victim, second = sorted(index)[0], sorted(index)[1]
    offset, length = index[victim]
    flip_bytes(path, offset + length // 2)
    r, got = pool.get(victim)
    assert r.returncode == 1 and got is None, r.stdout[:200]
    assert re.search(rb"checksum", r.stderr, re.I), r.stderr
    assert pool.member_metric("a", "ferry_store_disk_checksum_errors_total") >= 1
    r, _ = pool.get(victim)  # still no bytes, still a clean error
    assert r.returncode == 1 and ERROR_NAME.search(r.stderr), r.stderr
    # ... and its neighbours in the same file still read exactly.
    for k in keys:
        if k != victim:
            pool.assert_reads_exact(k)

    # Corrupted while the member is stopped: after the restart it is never served either.
    pool.procs["a"].stop()
    time.sleep(3)
    offset, length = index[second]
    flip_bytes(path, offset + length // 2)
    pool.restart("a")
    rest = [k for k in keys if k not in (victim, second)]
    wait_for("the intact objects registered again", lambda: all(
        pool.tiers(k) == ["local_disk"] for k in rest), 20)
    r, got = pool.get(second)
    assert r.returncode == 1 and got is None
    assert re.search(rb"checksum|OBJECT_NOT_FOUND", r.stderr, re.I), r.stderr
    for k in rest:
        pool.assert_reads_exact(k)


def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/small (the test is skipped where mount is refused);
    the caller adds it to its pool's mounts, which unmounts it."""
    disk = tmp_path / "small"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.decode(errors="replace").strip())
    return disk


def test_a_full_disk_fails_offloads_and_dram_keeps_working(pool_factory, tmp_path):
    disk = small_tmpfs(tmp_path)
    pool = pool_factory(["--enable_offload", "--eager_offload"])
    pool.mounts.append(disk)
    pool.member("a", "64MB", ssd_dir=disk)
    keys = ["f%02d" % i for i in range(12)]
    for k in keys:
        pool.value(k, MiB)
    writer = pool.worker("writer")
    put = writer.ask(cmd="put", dir=str(pool.vals), keys=keys)
    assert sorted(put["ok"]) == sorted(keys), put["failed"]
    wait_for("an offload failure", lambda: (pool.master_metric(
        "ferry_store_offload_failures_total") or 0) >= 1, 20)
    log = pool.procs["a"].log()
    assert re.search(r"disk full|no space|ENOSPC", log, re.I), log[-3000:]

    # DRAM keeps working: more puts, and every object reads back exactly.
    more = ["g%02d" % i for i in range(4)]
    for k in more:
        pool.value(k, MiB)
    put = writer.ask(cmd="put", dir=str(pool.vals), keys=more)
    assert sorted(put["ok"]) == sorted(more), put["failed"]
    got = writer.ask(cmd="get", dir=str(pool.vals), keys=keys + more)
    assert sorted(got["exact"]) == sorted(keys + more), got
    for k in (keys[0], keys[-1], more[-1]):
        pool.assert_reads_exact(k)
    tiers = settle(lambda: {k: pool.tiers(k) for k in keys + more})
    assert all("memory" in t for t in tiers.values()), tiers
    on_disk = [k for k, t in tiers.items() if "local_disk" in t]
    assert len(on_disk) <= 3, on_disk  # 4 MiB hold at most three 1 MiB buckets
    assert pool.member_metric("a", "ferry_store_disk_objects") == len(on_disk)
    assert pool.master_metric("ferry_store_tier_objects", tier="local_disk") == len(on_disk)
    assert temp_files(disk) == [], os.listdir(disk)


def test_a_full_disk_under_eviction_does_not_stall_puts(pool_factory, tmp_path):
    """No eager offload, DRAM smaller than the data, a 4 MiB tmpfs: once the disk is full
    evicted objects can no longer be offloaded and are evicted as without a tier; puts keep
    succeeding, and whatever the pool lists reads exactly."""
    disk = small_tmpfs(tmp_path)
    pool = pool_factory(["--enable_offload", *EVICT_EARLY])
    pool.mounts.append(disk)
    pool.member("a", "16MB", ssd_dir=disk)
    keys = ["d%02d" % i for i in range(40)]
    for k in keys:
        pool.value(k, MiB)
    start = time.monotonic()
    acked = [k for k in keys if pool.put(k).returncode == 0]
    took = time.monotonic() - start
    assert len(acked) >= 36, "only %d of 40 puts succeeded" % len(acked)
    assert took < 40, "40 puts took %.1fs" % took
    assert (pool.master_metric("ferry_store_offload_failures_total") or 0) >= 1
    tiers = settle(lambda: {k: pool.tiers(k) for k in keys})
    kept = [k for k in acked if tiers[k] is not None]
    assert set(pool.ls()) == set(kept)
    on_disk = [k for k in kept if "local_disk" in tiers[k]]
    assert len(on_disk) <= 3, on_disk
    for k in kept:
        pool.assert_reads_exact(k)
    assert temp_files(disk) == [], os.listdir(disk)


def test_disk_copies_come_back_after_a_master_restart(pool_factory, tmp_path):
    """The master's log does not hold disk copies: killed -9 and restarted on its
    --data_dir, it learns them again from the member's re-mount."""
    data_dir = tmp_path / "meta"
    pool = pool_factory(["--enable_offload", "--data_dir", str(data_dir), *EVICT_EARLY])
    disk = tmp_path / "a"
    pool.member("a", "16MB", ssd_dir=disk)
    keys = ["m%02d" % i for i in range(24)]
    for k in keys:
        pool.value(k, MiB)
    acked = [k for k in keys if pool.put(k).returncode == 0]
    assert len(acked) >= 20, "only %d of 24 puts succeeded" % len(acked)
    before = settle(lambda: {k: pool.tiers(k) for k in acked})
    disk_only = [k for k in acked if before[k] == ["local_disk"]]
    assert disk_only, before
    pool.master.kill()
    pool.master.start(ready="listening on", timeout=20)
    wait_for("the disk-only objects registered again", lambda: all(
        pool.tiers(k) == ["local_disk"] for k in disk_only), 20)
    after = settle(lambda: {k: pool.tiers(k) for k in acked})
    lost = [k for k in acked if after[k] is None]
    assert lost == [], "gone after the master's restart: %s (before: %s)" % (
        lost, {k: before[k] for k in lost})
    for k in acked:
        pool.assert_reads_exact(k)


def test_ssd_capacity_evicts_the_oldest_buckets_and_lists_only_what_reads(pool_factory,
                                                                          tmp_path):
    pool = pool_factory(["--enable_offload", *EVICT_EARLY])
    disk = tmp_path / "a"
    pool.member("a", "16MB", ssd_dir=disk, extra=["--ssd_capacity", "8MB"])
    keys = ["e%02d" % i for i in range(40)]
    for k in keys:
        pool.value(k, MiB)
    acked = [k for k in keys if pool.put(k).returncode == 0]
    assert len(acked) >= 36, "only %d of 40 puts succeeded" % len(acked)
    tiers = settle(lambda: {k: pool.tiers(k) for k in keys})
    # 40 MiB into 16 MiB of DRAM and 8 MiB of disk: the oldest disk copies went away.
    gone = [k for k in acked if tiers[k] is None]
    kept = [k for k in acked if tiers[k] is not None]
    print("%d acknowledged, %d kept, %d gone" % (len(acked), len(kept), len(gone)))
    assert gone, tiers
    assert pool.master_metric("ferry_store_disk_evictions_total") >= 1
    assert pool.member_metric("a", "ferry_store_disk_evictions_total") >= 1
    assert pool.member_metric("a", "ferry_store_disk_bytes") <= 8 * MiB
    assert sum(os.path.getsize(p) for p in bucket_files(disk)) <= 8 * MiB
    on_disk = [k for k in kept if "local_disk" in tiers[k]]
    assert pool.member_metric("a", "ferry_store_disk_objects") == len(on_disk)
    assert pool.master_metric("ferry_store_tier_objects", tier="local_disk") == len(on_disk)
    assert set(pool.ls()) == set(kept)
    # Whatever is listed reads exactly; what is gone is a clean OBJECT_NOT_FOUND.
    for k in kept:
        pool.assert_reads_exact(k)
    for k in gone[:4]:
        r, _ = pool.get(k)
        assert r.returncode == 1 and b"OBJECT_NOT_FOUND" in r.stderr, r.stderr


def offload_together(pool, disk, keys):
    """Puts keys in one batch (master --eager_offload: few offload batches, few buckets),
    waits until each has its disk copy, and returns the keys of the bucket that holds the
    most of them (at least two)."""
    for k in keys:
        pool.value(k, MiB)
    w = pool.worker("writer")
    put = w.ask(cmd="put", dir=str(pool.vals), keys=keys, batch=True)
    assert sorted(put["ok"]) == sorted(keys), put
    wait_for("every object offloaded", lambda: all(
        "local_disk" in (pool.tiers(k) or []) for k in keys), 15)
    w.close()
    pool.workers.remove(w)
    indexes = [sorted(bucket_index(p) or {}) for p in bucket_files(disk)]
    shared = max(indexes, key=len)
    assert len(shared) >= 2, "every object in a bucket of its own: %s" % indexes
    return shared


def test_an_upserted_key_never_reads_its_old_disk_copy_after_a_restart(pool_factory,
                                                                       tmp_path):
    """K=V1 is on member a's disk, in a bucket with other live objects; K is upserted to V2
    (same size), which lands in member b's DRAM (b has no disk tier); a is killed and
    restarted on its directory. The old bytes V1 must never be served for K again: not
    while V2 is there, and not once V2 is gone (b killed)."""
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=2)
    disk = tmp_path / "a"
    pool.member("a", "16MB", ssd_dir=disk)
    key = offload_together(pool, disk, ["k%d" % i for i in range(6)])[0]
    old = pool.expected(key)
    pool.member("b", "64MB")  # no disk tier; the most free bytes: V2 goes here
    new = pool.value(key, MiB)
    r = pool.cli("put", key, "--file", str(pool.vals / key), "--upsert")
    assert r.returncode == 0, r.stderr
    assert pool.tiers(key) == ["memory"], pool.query(key)
    pool.assert_reads_exact(key)

    pool.procs["a"].kill()
    time.sleep(3)  # past client_ttl: a's copies are dropped
    pool.restart("a")
    wait_for("a registered its disk", lambda: "registered with the master" in
             pool.procs["a"].log(), 15)
    time.sleep(0.5)
    r, got = pool.get(key)
    assert r.returncode == 0 and got == new, "%s reads %s" % (
        key, "its OLD value" if got == old else r.stderr)
    replicas = pool.query(key)
    # V2 gone (b killed): the key is gone, never back to V1.
    pool.procs["b"].kill()
    time.sleep(3)
    r, got = pool.get(key)
    stale = got == old
    assert not stale, "%s reads its value from before the upsert once the new value is " \
        "gone: the restarted member's stale disk copy was attached to the key (its replicas " \
        "after the restart: %s)" % (key, replicas)
    assert r.returncode == 1 and b"OBJECT_NOT_FOUND" in r.stderr, r.stderr
    assert "local_disk" not in [x["tier"] for x in replicas["replicas"]], replicas


def test_an_upserted_key_whose_new_value_is_lost_never_reads_its_old_value(pool_factory,
                                                                           tmp_path):
    """K=V1 on member a's disk (a bucket shared with live objects); K upserted to V2 in
    member b's DRAM; b dies, so V2 and K are gone; then a restarts on its directory. K must
    stay gone: its old value V1 coming back would be a read going back in time."""
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=2)
    disk = tmp_path / "a"
    pool.member("a", "16MB", ssd_dir=disk)
    key = offload_together(pool, disk, ["k%d" % i for i in range(6)])[0]
    old = pool.expected(key)
    pool.member("b", "64MB")  # no disk tier; the most free bytes: V2 goes here
    pool.value(key, MiB)
    r = pool.cli("put", key, "--file", str(pool.vals / key), "--upsert")
    assert r.returncode == 0, r.stderr
    assert pool.tiers(key) == ["memory"], pool.query(key)
    pool.assert_reads_exact(key)
    pool.procs["b"].kill()
    wait_for("%s gone with b" % key, lambda: pool.tiers(key) is None, 10)
    pool.procs["a"].stop()
    time.sleep(3)
    pool.restart("a")
    wait_for("a registered its disk", lambda: "registered with the master" in
             pool.procs["a"].log(), 15)
    time.sleep(0.5)
    r, got = pool.get(key)
    stale = got == old
    assert not stale, "%s reads its value from before the upsert after a's restart " \
        "(replicas: %s)" % (key, pool.query(key))
    assert r.returncode == 1 and b"OBJECT_NOT_FOUND" in r.stderr, r.stderr


def test_a_removed_object_stays_removed_after_its_member_restarts(pool_factory, tmp_path):
    """`ferry store rm` of an object whose disk copy shares a bucket with live objects, then
    the member restarts on its directory: the removed object must not come back."""
    pool = pool_factory(["--enable_offload", "--eager_offload"], client_ttl=2)
    disk = tmp_path / "a"
    pool.member("a", "16MB", ssd_dir=disk)
    key, neighbour = offload_together(pool, disk, ["k%d" % i for i in range(6)])[:2]
    assert pool.cli("rm", key).returncode == 0
    r, _ = pool.get(key)
    assert r.returncode == 1 and b"OBJECT_NOT_FOUND" in r.stderr, r.stderr
    pool.procs["a"].stop()
    time.sleep(3)
    pool.restart("a")
    wait_for("a registered its disk", lambda: "registered with the master" in
             pool.procs["a"].log(), 15)
    wait_for("the neighbour back", lambda: pool.tiers(neighbour) == ["local_disk"], 15)
    pool.assert_reads_exact(neighbour)
    r, got = pool.get(key)
    back = r.returncode == 0
    assert not back, "a removed object is back after its member restarted (%s)" % (
        "its old bytes" if got == pool.expected(key) else "other bytes")
    assert b"OBJECT_NOT_FOUND" in r.stderr, r.stderr


@pytest.mark.parametrize("setup", ["positional", "dict"])
def test_python_member_with_an_ssd_tier(pool_factory, tmp_path, setup):
    """mooncake.store's setup(enable_ssd_offload=True, ssd_offload_path=DIR), in both forms:
    the Python process is the member; its evicted objects are local-disk replicas."""
    pool = pool_factory(["--enable_offload", *EVICT_EARLY])
    disk = tmp_path / "py"
    keys = ["p%02d" % i for i in range(16)]
    for k in keys:
        pool.value(k, MiB)
    w = pool.worker("py-member", segment="8MB", ssd_dir=disk, setup=setup)
    ok = []
    for k in keys:  # one at a time: offloads catch up
        put = w.ask(cmd="put", dir=str(pool.vals), keys=[k])
        ok += put["ok"]
    assert len(ok) >= 12, "only %d of 16 puts succeeded" % len(ok)
    tiers = settle(lambda: {k: pool.tiers(k) for k in ok})
    disk_only = [k for k in ok if tiers[k] == ["local_disk"]]
    assert disk_only, tiers
    assert bucket_files(disk), "nothing written to ssd_offload_path"
    desc = w.ask(cmd="desc", keys=disk_only[:1])[disk_only[0]]
    assert len(desc) == 1 and desc[0]["local_disk"] and not desc[0]["memory"] and \
        not desc[0]["disk"], desc
    got = w.ask(cmd="get", dir=str(pool.vals), keys=ok)
    assert sorted(got["exact"]) == sorted(ok), got
    pool.assert_reads_exact(disk_only[0])  # another process reads it from this one's disk
