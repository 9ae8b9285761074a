"""The SSD tier end to end: offload write and read-back throughput through real processes
(a master with --enable_offload --eager_offload, one member lending a disk directory, a
reader), against dd (and fio, when installed) on the same directory in the same run.

- offload write: 1 MiB objects put into the member's DRAM; the member writes them to its
  disk as the master's offload tasks arrive. Time from the first put to the last offload
  reported, and the member's own disk time (its ferry_store_disk_write_seconds).
- read-back: the member is restarted on its directory (its copies are then disk-only),
  the page cache dropped (when this host allows it), and a reader gets every object in
  batches: each batch is staged by the member from disk and pulled over the transfer
  engine.
- small read-back: the same with 64 KiB objects, one get at a time and in batches (ops/s).
Baselines: dd bs=1M (write with conv=fdatasync, read after a cache drop); fio sequential
1 MiB write/read and 64 KiB random reads (psync, one job) when fio is installed.

    PYTHONPATH=build/python python3 bench/store_ssd_throughput.py --ferry build/bin/ferry \
        [--dir /tmp/ferry_ssd_bench] [--total_mib 1024] [--small_mib 128] [--serial] \
        [--protocol tcp|shm]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "store"))
from store_harness import Proc, free_port  # noqa: E402

import ferry.store as fs  # noqa: E402

MIB = 1 << 20


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else 0.0


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def pretouch(mib):
    """Fills and frees `mib` MiB of /dev/shm. In a VM whose balloon reports free pages to the
    host (virtio_balloon here), memory idle for a few seconds costs a host fault per page on
    its next use, which slows whichever program runs first after a pause (both the member's
    segment and the page cache it writes through); every program measured here starts right
    after this, on pages freed a moment ago (as bench/store_disk_bench.sh does)."""
    path = "/dev/shm/ferry_ssd_bench.pretouch"
    try:
        subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib],
                       capture_output=True)
    finally:
        if os.path.exists(path):
            os.unlink(path)


def dd(args):
    r = subprocess.run(["dd", *args], capture_output=True, text=True)
    m = re.search(r"copied, ([\d.]+) s", r.stderr)
    return float(m.group(1)) if m else float("nan")


def fio(name, path, rw, bs, size_mib, direct=0):
    if shutil.which("fio") is None:
        return None
    r = subprocess.run(["fio", "--name=" + name, "--filename=" + path, "--rw=" + rw,
                        "--bs=" + bs, "--size=%dM" % size_mib, "--ioengine=psync",
                        "--numjobs=1", "--direct=%d" % direct, "--end_fsync=1",
                        "--output-format=json"], capture_output=True, text=True)
    try:
        job = json.loads(r.stdout)["jobs"][0]
    except (ValueError, KeyError, IndexError):
        return None
    side = job["write"] if rw in ("write", "randwrite") else job["read"]
    return {"bw": side["bw_bytes"], "iops": side["iops"]}


class Pool:
    def __init__(self, ferry, tmp, disk_dir, segment_mib, protocol):
        self.ferry, self.tmp, self.disk_dir, self.segment_mib = ferry, tmp, disk_dir, segment_mib
        self.protocol = protocol
        port = free_port()
        self.master_addr = "127.0.0.1:%d" % port
        self.master_metrics = free_port()
        self.master = Proc("master", [ferry, "master", "--rpc_address", "127.0.0.1",
                                      "--rpc_port", port, "--metrics_port", self.master_metrics,
                                      "--enable_offload", "--eager_offload", "--client_ttl", "3"],
                           os.path.join(tmp, "master.log"))
        self.master.start("listening on")
        self.member = None
        self.member_metrics = None

    def start_member(self):
        self.member_metrics = free_port()
        self.member = Proc("member", [self.ferry, "store", "member", "--local_hostname",
                                      "127.0.0.1", "--master_server_address", self.master_addr,
                                      "--protocol", self.protocol, "--global_segment_size",
                                      "%dMB" % self.segment_mib, "--enable_ssd_offload",
                                      "--ssd_offload_path", self.disk_dir, "--metrics_port",
                                      self.member_metrics],
                           os.path.join(self.tmp, "member.log"))
        self.member.start("member ready", timeout=120)

    def restart_member(self):
        self.member.signal(signal.SIGTERM)
        self.member.wait(30)
        self.start_member()

    def close(self):
        for p in (self.member, self.master):
            if p is not None:
                p.kill()


def put_all(client, prefix, count, size, batch=32, after_batch=None):
    value = os.urandom(size)
    keys = ["%s%d" % (prefix, i) for i in range(count)]
    for b in range(0, count, batch):
        client.put_batch(keys[b:b + batch], [value] * len(keys[b:b + batch]))
        if after_batch is not None:
            after_batch(b + len(keys[b:b + batch]))
    return keys, value


def wait_offloaded(pool, want, timeout=600):
    deadline = time.monotonic() + timeout
    while metric(pool.member_metrics, "ferry_store_disk_offloads_total") < want:
        if time.monotonic() > deadline:
            raise SystemExit("offloads did not finish: %s" % pool.member.log()[-2000:])
        time.sleep(0.01)


def read_all(client, keys, value, batch):
    start = time.monotonic()
    for b in range(0, len(keys), batch):
        got = client.get_batch(keys[b:b + batch])
        for g in got:
            if g != value:
                raise SystemExit("read-back returned wrong bytes")
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferry", default="build/bin/ferry")
    ap.add_argument("--dir", default="/tmp/ferry_ssd_bench")
    ap.add_argument("--total_mib", type=int, default=1024)
    ap.add_argument("--small_mib", type=int, default=128)
    ap.add_argument("--protocol", default="tcp", help="tcp, or shm (reader and owner on one host)")
    ap.add_argument("--batch", type=int, default=64, help="1 MiB objects per get_batch")
    ap.add_argument("--serial", action="store_true",
                    help="wait for each batch's offload before the next put")
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    disk_dir = os.path.join(a.dir, "tier")
    tmp = tempfile.mkdtemp(prefix="ferry_ssd_bench_")
    rows = []
    n_big = a.total_mib
    n_small = a.small_mib * 16
    pool = Pool(a.ferry, tmp, disk_dir, a.total_mib + a.small_mib + 256, a.protocol)
    try:
        pretouch(4 * a.total_mib + a.small_mib + 512)
        pool.start_member()
        client = fs.Store(pool.master_addr, protocol=a.protocol, transfer_timeout=60)
        print("protocol: %s" % a.protocol)
        # Offload write, 1 MiB.
        t0 = time.monotonic()
        # --serial: each batch of 64 is on disk before the next is put, so that the disk
        # writes do not share the CPUs with the puts' transfers.
        wait = (lambda done: wait_offloaded(pool, done)) if a.serial else None
        big_keys, big_value = put_all(client, "big", n_big, MIB, batch=64, after_batch=wait)
        wait_offloaded(pool, n_big)
        t_offload = time.monotonic() - t0
        disk_write_s = metric(pool.member_metrics, "ferry_store_disk_write_seconds_sum")
        buckets = metric(pool.member_metrics, "ferry_store_disk_write_seconds_count")
        small_keys, small_value = put_all(client, "small", n_small, 64 << 10)
        wait_offloaded(pool, n_big + n_small)
        # Read-back: the member again on its directory, its copies now disk-only.
        pool.restart_member()
        time.sleep(0.5)
        dropped = drop_caches()
        read_s0 = metric(pool.member_metrics, "ferry_store_disk_read_seconds_sum")
        t_read = read_all(client, big_keys, big_value, a.batch)
        disk_read_s = metric(pool.member_metrics, "ferry_store_disk_read_seconds_sum") - read_s0
        drop_caches()
        t_small_batch = read_all(client, small_keys, small_value, 64)
        drop_caches()
        one = small_keys[: min(len(small_keys), 1024)]
        t_small_one = read_all(client, one, small_value, 1)
        client.close()
    finally:
        pool.close()

    dd_file = os.path.join(a.dir, "dd.bin")
    dd_w = dd(["if=/dev/urandom", "of=/dev/null", "bs=1M", "count=1"])  # warm dd itself
    pretouch(4 * a.total_mib + a.small_mib + 512)
    dd_w = dd(["if=/dev/zero", "of=" + dd_file, "bs=1M", "count=%d" % n_big, "conv=fdatasync"])
    drop_caches()
    dd_r = dd(["if=" + dd_file, "of=/dev/null", "bs=1M"])
    os.unlink(dd_file)
    fio_file = os.path.join(a.dir, "fio.bin")
    pretouch(4 * a.total_mib + a.small_mib + 512)
    fio_w = fio("w", fio_file, "write", "1M", n_big)
    drop_caches()
    fio_r = fio("r", fio_file, "read", "1M", n_big)
    drop_caches()
    fio_small = fio("s", fio_file, "randread", "64k", a.small_mib)
    if os.path.exists(fio_file):
        os.unlink(fio_file)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(a.dir, ignore_errors=True)

    gb = n_big * MIB / 1e9
    ferry_w = gb / t_offload
    ferry_w_disk = gb / disk_write_s if disk_write_s > 0 else float("nan")
    ferry_r = gb / t_read
    small_batch_ops = n_small / t_small_batch
    small_one_ops = len(one) / t_small_one
    print("page cache dropped before reads: %s" % ("yes" if dropped else "no (reads warm)"))
    print("offload: %d buckets written, %.1f MiB each on average" % (buckets, n_big / max(buckets, 1)))
    print("read-back 1 MiB: %.2f s in all, %.2f s of it in the owner's disk reads" % (
        t_read, disk_read_s))
    print("%-34s %10s %10s %8s %10s %8s" % ("figure", "Ferry", "dd", "ratio", "fio", "ratio"))

    def row(name, ferry_v, dd_v, fio_v, unit):
        r_dd = ferry_v / dd_v if dd_v else float("nan")
        r_fio = ferry_v / fio_v if fio_v else float("nan")
        print("%-34s %10.2f %10s %8.2f %10s %8.2f %s" % (
            name, ferry_v, "%.2f" % dd_v if dd_v else "-", r_dd,
            "%.2f" % fio_v if fio_v else "-", r_fio, unit))
        rows.append({"figure": name, "ferry": ferry_v, "dd": dd_v, "fio": fio_v,
                     "ratio_dd": r_dd, "ratio_fio": r_fio, "unit": unit})

    row("offload write 1 MiB (end to end)", ferry_w, gb / dd_w, fio_w and fio_w["bw"] / 1e9,
        "GB/s")
    row("offload write 1 MiB (member disk)", ferry_w_disk, gb / dd_w,
        fio_w and fio_w["bw"] / 1e9, "GB/s")
    row("read-back 1 MiB, batches of %d" % a.batch, ferry_r, gb / dd_r, fio_r and fio_r["bw"] / 1e9,
        "GB/s")
    row("read-back 64 KiB, batches of 64", small_batch_ops, None,
        fio_small and fio_small["iops"], "ops/s")
    row("read-back 64 KiB, one at a time", small_one_ops, None,
        fio_small and fio_small["iops"], "ops/s")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
