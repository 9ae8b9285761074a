#!/usr/bin/env python3
"""Benchmark the reference Mooncake Store (PyPI wheel) as a peer for Ferry.

Run it with the Python of a venv that has the Mooncake wheel installed, e.g.

    nice -n 10 /work/venv-mooncake/bin/python bench/store_mooncake_peer.py \
        --json-out /tmp/mooncake_peer.json

Topology (everything on 127.0.0.1):
  * one mooncake_master (started here, or given with --master HOST:PORT),
  * one pool-member process: setup() with a large global segment, then waits,
  * one client process: setup() with global_segment_size=0, so every put lands
    in the member's segment, and measures the cases.

Cases (per value size and batch): put/get in "copy" mode (put/put_batch,
get/get_batch) and in "zero_copy" mode (register_buffer + put_from /
batch_put_from, get_into / batch_get_into); plus is_exist (batch 1) and
batch_is_exist (32 keys of 4 KiB). Figures per case: GB/s (1e9 bytes/s),
objects/s, p50 and p99 latency per call in microseconds.

One JSON object goes to stdout (and to --json-out); progress goes to stderr.
Every process started here is killed on exit (own process groups), and every
wait has a timeout. Exit codes: 0 ok, 2 the store could not be brought up
(message on stderr and in the JSON "error" field), 3 benchmark failure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

KIB = 1024
MIB = 1024 * 1024
HOST = "127.0.0.1"
METADATA = "P2PHANDSHAKE"
PROTOCOL = "tcp"
DIST_NAMES = (
    "mooncake-transfer-engine-non-cuda",
    "mooncake-transfer-engine",
    "mooncake-transfer-engine-cuda13",
)


def log(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()


def parse_size(text: str) -> int:
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = 1
    if t.endswith("K"):
        mult, t = KIB, t[:-1]
    elif t.endswith("M"):
        mult, t = MIB, t[:-1]
    elif t.endswith("G"):
        mult, t = 1024 * MIB, t[:-1]
    return int(float(t) * mult)


def parse_list(text: str, fn):
    return [fn(x) for x in text.split(",") if x.strip()]


def human_size(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB}MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB}KiB"
    return f"{n}B"


def wheel_version() -> str:
    for name in DIST_NAMES:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def port_open(addr: str, timeout: float = 0.5) -> bool:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class SetupFailure(Exception):
    """The store could not be brought up here (exit code 2)."""


# --------------------------------------------------------------------------
# Child roles
# --------------------------------------------------------------------------


def _parent_watchdog(deadline: float) -> None:
    """Exit the child when its parent goes away or the deadline passes."""
    ppid = os.getppid()

    def run():
        while True:
            if os.getppid() != ppid or time.monotonic() > deadline:
                os._exit(17)
            time.sleep(0.25)

    threading.Thread(target=run, daemon=True).start()


def _setup_store(master: str, global_segment: int, local_buffer: int):
    if not port_open(master, 2.0):
        # setup() against an unreachable master blocks ~90 s before failing.
        raise SetupFailure(f"master {master} is not accepting connections")
    from mooncake.store import MooncakeDistributedStore  # noqa: E402

    store = MooncakeDistributedStore()
    rc = store.setup(HOST, METADATA, global_segment, local_buffer, PROTOCOL, "",
                     master)
    if rc != 0:
        raise SetupFailure(
            f"MooncakeDistributedStore.setup(protocol={PROTOCOL}, metadata="
            f"{METADATA}, global_segment_size={global_segment}) returned {rc}")
    return store


def role_member(args) -> int:
    _parent_watchdog(time.monotonic() + args.child_timeout)
    try:
        store = _setup_store(args.master, args.member_segment, 16 * MIB)
    except SetupFailure as e:
        print(f"FAILED {e}", flush=True)
        return 2
    # The member's own put can only land in its own segment: learn its
    # transport endpoint so the client can check where its puts land.
    probe = f"mcpeer-member-probe-{os.getpid()}"
    endpoint = "?"
    if store.put(probe, b"m" * 4096) == 0:
        endpoint = replica_endpoint(store, probe)
        store.remove(probe, True)
    print(f"READY {store.get_hostname()} {endpoint}", flush=True)
    # Wait for the parent to close our stdin (or die, see watchdog).
    try:
        while True:
            r, _, _ = select.select([sys.stdin], [], [], 1.0)
            if r and not sys.stdin.buffer.read1(4096):
                break
    except (OSError, ValueError):
        pass
    store.close()
    return 0


def replica_endpoint(store, key) -> str:
    """Transport endpoint of the segment holding the memory replica of key."""
    try:
        for r in store.get_replica_desc(key):
            if r.is_memory_replica():
                return r.get_memory_descriptor().buffer_descriptor.transport_endpoint
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unknown ({e})"
    return "none"


class Case:
    def __init__(self, op, mode, size, batch):
        self.op, self.mode, self.size, self.batch = op, mode, size, batch
        self.lat_ns: list[int] = []
        self.errors = 0
        self.first_error = None
        self.note = None

    def record(self, dt_ns: int, ok: bool, detail=None):
        self.lat_ns.append(dt_ns)
        if not ok:
            self.errors += 1
            if self.first_error is None:
                self.first_error = detail

    def result(self) -> dict:
        n = len(self.lat_ns)
        out = {"op": self.op, "mode": self.mode, "size": self.size,
               "batch": self.batch, "calls": n, "errors": self.errors}
        if n == 0:
            out.update(gbps=None, objects_per_s=None, p50_us=None, p99_us=None)
        else:
            lat = sorted(self.lat_ns)
            total_s = sum(lat) / 1e9
            objs = n * self.batch
            moves_data = self.op in ("put", "get")
            out["gbps"] = (round(objs * self.size / total_s / 1e9, 4)
                           if moves_data and total_s > 0 else None)
            out["objects_per_s"] = round(objs / total_s, 1) if total_s > 0 else None
            out["p50_us"] = round(lat[min(n - 1, int(0.50 * n))] / 1e3, 2)
            out["p99_us"] = round(lat[min(n - 1, int(math.ceil(0.99 * n)) - 1)] / 1e3, 2)
        if self.first_error is not None:
            out["first_error"] = str(self.first_error)
        if self.note:
            out["note"] = self.note
        return out


def role_client(args) -> int:
    import ctypes
    import mmap

    _parent_watchdog(time.monotonic() + args.child_timeout)
    t_start = time.monotonic()
    try:
        store = _setup_store(args.master, 0, args.client_buffer)
    except SetupFailure as e:
        _write_json(args.result_file, {"error": str(e)})
        log(f"[client] {e}")
        return 2

    quick = args.quick
    target_bytes = (8 if quick else 64) * MIB       # data moved per case
    min_calls_small = 50 if quick else 200          # per-call bytes <= 1 MiB
    min_calls_large = 3 if quick else 8
    case_cap_s = 0.6 if quick else 2.5              # time cap per case
    pool_budget = min(args.member_segment // 2, 256 * MIB)
    own_prefix = f"mcpeer{os.getpid()}x{int(time.time() * 1000) % 10**8}"
    key_seq = [0]

    def fresh_keys(n):
        base = key_seq[0]
        key_seq[0] += n
        return [f"{own_prefix}-{i}" for i in range(base, base + n)]

    def drop(keys):
        for i in range(0, len(keys), 256):
            store.batch_remove(keys[i:i + 256], True)
        keys.clear()

    # Sanity: a put from this client (no segment of its own) lands in the member.
    probe = fresh_keys(1)[0]
    rc = store.put(probe, b"p" * 4096)
    if rc != 0:
        msg = (f"put with client global_segment_size=0 returned {rc} "
               "(no pool member segment mounted?)")
        _write_json(args.result_file, {"error": msg})
        log(f"[client] {msg}")
        return 2
    landed = replica_endpoint(store, probe)
    store.remove(probe, True)
    same = "yes" if landed == args.member_endpoint else "NO"
    log(f"[client] a put lands at transport endpoint {landed}; member's is "
        f"{args.member_endpoint}: in member = {same}")
    if landed != args.member_endpoint:
        _write_json(args.result_file, {"error": f"client put landed at {landed}, "
                                       f"not in the member ({args.member_endpoint})"})
        return 2

    max_call_bytes = max(args.sizes) * max(args.batches)
    zc_len = max(max_call_bytes, 32 * 4 * KIB)
    zc_map = mmap.mmap(-1, zc_len)
    zc_map.write(b"z" * zc_len)
    zc_base = ctypes.addressof(ctypes.c_char.from_buffer(zc_map))
    reg_rc = store.register_buffer(zc_base, zc_len)
    zero_copy_ok = reg_rc == 0
    if not zero_copy_ok:
        log(f"[client] register_buffer returned {reg_rc}; zero-copy cases skipped")

    results = []
    perf = time.perf_counter_ns

    def n_calls(size, batch):
        per_call = size * batch
        lo = min_calls_small if per_call <= MIB else min_calls_large
        return max(lo, math.ceil(target_bytes / per_call))

    def fill(size, count):
        """Put `count` objects of `size` (untimed); returns their keys."""
        keys = fresh_keys(count)
        chunk = max(1, min(32, (64 * MIB) // size))
        value = b"f" * size
        for i in range(0, count, chunk):
            ks = keys[i:i + chunk]
            rc = store.put_batch(ks, [value] * len(ks))
            if rc != 0:
                raise RuntimeError(f"fill put_batch({len(ks)} x {size}) returned {rc}")
        return keys

    def run_put(mode, size, batch):
        case = Case("put", mode, size, batch)
        calls = n_calls(size, batch)
        value = b"v" * size
        values = [value] * batch
        ptrs = [zc_base + i * size for i in range(batch)]
        sizes = [size] * batch
        live: list[str] = []
        live_bytes = 0

        def one(keys):
            if mode == "copy":
                if batch == 1:
                    t0 = perf(); rc = store.put(keys[0], value); dt = perf() - t0
                    return dt, rc == 0, rc
                t0 = perf(); rc = store.put_batch(keys, values); dt = perf() - t0
                return dt, rc == 0, rc
            if batch == 1:
                t0 = perf(); rc = store.put_from(keys[0], ptrs[0], size); dt = perf() - t0
                return dt, rc == 0, rc
            t0 = perf(); rcs = store.batch_put_from(keys, ptrs, sizes); dt = perf() - t0
            bad = [r for r in rcs if r != 0]
            return dt, not bad, (bad[0] if bad else 0)

        for _ in range(2):  # warm-up
            ks = fresh_keys(batch); one(ks); live += ks; live_bytes += size * batch
        t_case = time.monotonic()
        for i in range(calls):
            if live_bytes + size * batch > pool_budget:
                drop(live); live_bytes = 0
            ks = fresh_keys(batch)
            dt, ok, detail = one(ks)
            case.record(dt, ok, detail)
            live += ks; live_bytes += size * batch
            if time.monotonic() - t_case > case_cap_s and i + 1 >= min_calls_large:
                case.note = f"time-capped at {i + 1} of {calls} planned calls"
                break
        drop(live)
        return case

    def run_get(mode, size, batch):
        case = Case("get", mode, size, batch)
        calls = n_calls(size, batch)
        ws = min(calls * batch, max(batch, pool_budget // size), 4096)
        ws = max(batch, (ws // batch) * batch)
        keys = fill(size, ws)
        groups = [keys[i:i + batch] for i in range(0, ws, batch)]
        ptrs = [zc_base + i * size for i in range(batch)]
        sizes = [size] * batch

        def one(ks):
            if mode == "copy":
                if batch == 1:
                    t0 = perf(); v = store.get(ks[0]); dt = perf() - t0
                    return dt, len(v) == size, f"len={len(v)}"
                t0 = perf(); vs = store.get_batch(ks); dt = perf() - t0
                bad = [len(v) for v in vs if len(v) != size]
                return dt, not bad and len(vs) == batch, f"lens={bad[:3]}"
            if batch == 1:
                t0 = perf(); rc = store.get_into(ks[0], ptrs[0], size); dt = perf() - t0
                return dt, rc == size, rc
            t0 = perf(); rcs = store.batch_get_into(ks, ptrs, sizes); dt = perf() - t0
            bad = [r for r in rcs if r != size]
            return dt, not bad, (bad[0] if bad else 0)

        for g in groups[:2]:  # warm-up
            one(g)
        t_case = time.monotonic()
        for i in range(calls):
            dt, ok, detail = one(groups[i % len(groups)])
            case.record(dt, ok, detail)
            if time.monotonic() - t_case > case_cap_s and i + 1 >= min_calls_large:
                case.note = f"time-capped at {i + 1} of {calls} planned calls"
                break
        if mode == "zero_copy" and case.errors == 0:
            if bytes(zc_map[0:16]) != b"f" * 16:
                case.errors += 1
                case.first_error = "get_into data mismatch"
        drop(keys)
        return case

    def run_exist(batch):
        case = Case("batch_is_exist" if batch > 1 else "is_exist", "meta", 4096, batch)
        keys = fill(4096, batch)
        calls = 500 if quick else 3000
        for _ in range(5):
            store.batch_is_exist(keys)
        t_case = time.monotonic()
        for i in range(calls):
            if batch == 1:
                t0 = perf(); r = store.is_exist(keys[0]); dt = perf() - t0
                case.record(dt, r == 1, r)
            else:
                t0 = perf(); rs = store.batch_is_exist(keys); dt = perf() - t0
                case.record(dt, all(r == 1 for r in rs), rs[:3])
            if time.monotonic() - t_case > case_cap_s and i + 1 >= min_calls_small:
                case.note = f"time-capped at {i + 1} of {calls} planned calls"
                break
        drop(keys)
        return case

    def report(case):
        r = case.result()
        results.append(r)
        gb = "-" if r["gbps"] is None else f"{r['gbps']:.3f}"
        ops = "-" if r["objects_per_s"] is None else f"{r['objects_per_s']:.0f}"
        log(f"[client] {r['op']:>14} {r['mode']:>9} {human_size(r['size']):>6} "
            f"x{r['batch']:<3} GB/s={gb:>7} obj/s={ops:>9} p50={r['p50_us']}us "
            f"p99={r['p99_us']}us calls={r['calls']} err={r['errors']}"
            + (f" ({r.get('first_error')})" if r["errors"] else "")
            + (f" [{r['note']}]" if r.get("note") else ""))

    modes = ["copy"] + (["zero_copy"] if zero_copy_ok else [])
    for size in args.sizes:
        for batch in args.batches:
            if size * batch > args.client_buffer // 2:
                log(f"[client] skip {human_size(size)} x{batch}: exceeds half the "
                    f"client local buffer ({human_size(args.client_buffer)})")
                continue
            for mode in modes:
                report(run_put(mode, size, batch))
                report(run_get(mode, size, batch))
    report(run_exist(1))
    report(run_exist(32))

    store.unregister_buffer(zc_base)
    store.close()
    _write_json(args.result_file, {
        "cases": results,
        "client_elapsed_s": round(time.monotonic() - t_start, 2),
        "zero_copy": zero_copy_ok,
        "landed_in": landed,
    })
    return 0


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


# --------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------


class Procs:
    """Processes started here, each in its own process group."""

    def __init__(self):
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name, cmd, **kw):
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.items.append((name, p))
        return p

    def kill_all(self):
        for name, p in reversed(self.items):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for name, p in reversed(self.items):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may hold other processes even if p exited
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                log(f"warning: {name} (pid {p.pid}) did not exit")


def find_master_bin(explicit):
    if explicit:
        return explicit
    spec = importlib.util.find_spec("mooncake")
    if spec and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            cand = os.path.join(d, "mooncake_master")
            if os.path.isfile(cand):
                return cand
    cand = os.path.join(os.path.dirname(sys.executable), "mooncake_master")
    if os.path.isfile(cand):
        return cand
    raise SetupFailure("mooncake_master not found; pass --master-bin")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
        return "".join(lines[-n:])
    except OSError:
        return ""


def preflight_import(env):
    cmd = [sys.executable, "-c", "import mooncake.store as s; s.MooncakeDistributedStore"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        raise SetupFailure("importing mooncake.store timed out after 60 s")
    if r.returncode != 0:
        err = (r.stderr or "").strip().splitlines()[-1:] or [f"rc={r.returncode}"]
        hint = ""
        if "libibverbs" in r.stderr or "librdmacm" in r.stderr or "libnuma" in r.stderr:
            hint = " (apt-get install libibverbs1 librdmacm1 libnuma1)"
        raise SetupFailure(f"cannot import mooncake.store: {err[0]}{hint}")


GLOG_LINE = re.compile(r"^(?:[IWEF]\d{4} |WARNING: Logging before InitGoogleLogging)")


def forward_stderr(pipe, log_path):
    with open(log_path, "w", errors="replace") as f:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace")
            f.write(line)
            if not GLOG_LINE.match(line):
                sys.stderr.write(line)
                sys.stderr.flush()


def read_line(pipe, timeout):
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([pipe], [], [], 0.5)
        if r:
            chunk = os.read(pipe.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode(errors="replace")
    return None


def orchestrate(args) -> int:
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="mooncake_peer_")
    env = dict(os.environ)
    version = wheel_version()
    out = {"peer": "mooncake", "version": version, "protocol": PROTOCOL,
           "metadata_server": METADATA, "host": HOST, "quick": bool(args.quick),
           "member_segment_bytes": args.member_segment,
           "client_local_buffer_bytes": args.client_buffer,
           "client_global_segment_bytes": 0, "cases": []}
    rc = 0

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        preflight_import(env)
        if args.master:
            master = args.master
            if not port_open(master, 2.0):
                raise SetupFailure(f"--master {master} is not accepting connections")
            log(f"using master at {master}")
        else:
            mbin = find_master_bin(args.master_bin)
            port, mport = free_port(), free_port()
            master = f"{HOST}:{port}"
            mlog = os.path.join(tmp, "master.log")
            cmd = [mbin, f"--rpc_address={HOST}", f"--rpc_port={port}",
                   f"--metrics_port={mport}", f"--metrics_host={HOST}",
                   "--rpc_thread_num=4"]
            log(f"starting {' '.join(cmd)}")
            with open(mlog, "wb") as f:
                mp = procs.start("master", cmd, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
            deadline = time.monotonic() + 20
            while not port_open(master, 0.3):
                if mp.poll() is not None:
                    raise SetupFailure(f"mooncake_master exited rc={mp.returncode}:\n"
                                       + tail(mlog))
                if time.monotonic() > deadline:
                    raise SetupFailure("mooncake_master did not listen within 20 s:\n"
                                       + tail(mlog))
                time.sleep(0.2)
        out["master"] = master

        common = [sys.executable, os.path.abspath(__file__), "--master", master,
                  "--member-segment", str(args.member_segment),
                  "--client-buffer", str(args.client_buffer),
                  "--sizes", ",".join(map(str, args.sizes)),
                  "--batches", ",".join(map(str, args.batches)),
                  "--child-timeout", str(args.timeout + 60)]
        if args.quick:
            common.append("--quick")

        member_log = os.path.join(tmp, "member.log")
        with open(member_log, "wb") as f:
            member = procs.start("member", common + ["--role", "member"],
                                 stdout=subprocess.PIPE, stderr=f,
                                 stdin=subprocess.PIPE, env=env)
        line = read_line(member.stdout, 60)
        if not line or not line.startswith("READY"):
            raise SetupFailure(
                f"pool member did not come up (rc={member.poll()}, said {line!r}):\n"
                + tail(member_log))
        parts = line.split()
        member_host = parts[1] if len(parts) > 1 else "?"
        member_endpoint = parts[2] if len(parts) > 2 else "?"
        log(f"pool member ready ({member_host}, segment "
            f"{human_size(args.member_segment)})")

        result_file = os.path.join(tmp, "client.json")
        client_log = os.path.join(tmp, "client.log")
        client = procs.start("client", common + ["--role", "client",
                                                 "--result-file", result_file,
                                                 "--member-host", member_host,
                                                 "--member-endpoint", member_endpoint],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
        # All of the client's stderr goes to client.log; our progress lines and
        # anything that is not a glog line (e.g. a Python traceback) also to ours.
        fwd = threading.Thread(target=forward_stderr,
                               args=(client.stderr, client_log), daemon=True)
        fwd.start()
        try:
            crc = client.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"client did not finish within {args.timeout} s")
        fwd.join(timeout=5)
        res = {}
        if os.path.exists(result_file):
            with open(result_file) as f:
                res = json.load(f)
        if crc != 0 or "error" in res:
            msg = res.get("error") or f"client exited rc={crc}" + (
                " (segfault)" if crc == -signal.SIGSEGV else "")
            if crc == 2 or "error" in res:
                raise SetupFailure(msg)
            raise RuntimeError(msg + "\n" + tail(client_log))
        out["cases"] = res["cases"]
        out["client_elapsed_s"] = res.get("client_elapsed_s")
        out["zero_copy"] = res.get("zero_copy")
        out["puts_landed_in"] = res.get("landed_in")
        out["member_hostname"] = member_host
        out["member_transport_endpoint"] = member_endpoint
        try:
            member.stdin.close()
        except OSError:
            pass
    except SetupFailure as e:
        log(f"mooncake peer: store could not be brought up: {e}")
        out["error"] = str(e)
        rc = 2
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # noqa: BLE001
        log(f"mooncake peer: benchmark failed: {e!r} (logs in {tmp})")
        out["error"] = repr(e)
        rc = int(e.code or 1) if isinstance(e, SystemExit) else (130 if isinstance(e, KeyboardInterrupt) else 3)
    finally:
        procs.kill_all()
    text = json.dumps(out, indent=1)
    print(text, flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    if rc == 0:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"logs kept in {tmp}")
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="4K,64K,1M,4M",
                    help="value sizes, comma separated (4096 or 4K, 1M, ...)")
    ap.add_argument("--batches", default="1,32", help="batch sizes, comma separated")
    ap.add_argument("--json-out", help="also write the JSON here")
    ap.add_argument("--master-bin", help="path of mooncake_master")
    ap.add_argument("--master", help="use a running master HOST:PORT instead")
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--member-segment", default="512M",
                    help="global segment of the pool member (default 512M)")
    ap.add_argument("--client-buffer", default="288M",
                    help="client local_buffer_size (default 288M)")
    ap.add_argument("--timeout", type=float, default=240.0,
                    help="max seconds for the client run (default 240)")
    # internal
    ap.add_argument("--role", choices=["member", "client"], help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    ap.add_argument("--member-host", default="?", help=argparse.SUPPRESS)
    ap.add_argument("--member-endpoint", default="?", help=argparse.SUPPRESS)
    ap.add_argument("--child-timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.sizes = parse_list(args.sizes, parse_size)
    args.batches = parse_list(args.batches, int)
    args.member_segment = parse_size(args.member_segment)
    args.client_buffer = parse_size(args.client_buffer)
    if args.role == "member":
        return role_member(args)
    if args.role == "client":
        return role_client(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
