#!/usr/bin/env python3
"""What the SSD tier buys when the working set is larger than DRAM: hit rate and get
latency with the tier on vs off, same run, same working set, same reader.

    PYTHONPATH=build/python python3 bench/store_ssd_bench.py --ferry build/bin/ferry \
        [--segment 64MB] [--working-set 256MB] [--object-size 256K] [--seconds 10] \
        [--dists uniform,zipf] [--modes off,on] [--ssd-dir /var/tmp]

For each mode: a `ferry master` and one `ferry store member` lending --segment of DRAM
(mode "on": master --enable_offload, member --enable_ssd_offload --ssd_offload_path DIR on
a real disk; "promote": the same plus --promotion_on_hit; "off": plain eviction, evicted
objects are gone), then this process (ferry.store, in-process gets: no process start in the
timings) puts the working set (objects of --object-size, random bytes, each stamped with its
key so a hit is checked), waits for the pool to settle, and gets random keys for --seconds
per distribution (uniform, or zipf: P(rank r) ~ 1/r^--zipf-s over a random permutation of
the keys). A get is a hit when it returns the object's exact bytes; a wrong byte aborts the
bench. Prints hit rate, gets/s, latency p50/p99 of all gets and of hits, per mode and
distribution, and on/off ratios.
"""

import argparse
import bisect
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "store"))
from store_harness import Proc, free_port, http_get  # noqa: E402

MODES = {
    "off": dict(master=[], member=False),
    "on": dict(master=["--enable_offload"], member=True),
    "promote": dict(master=["--enable_offload", "--promotion_on_hit"], member=True),
}
# Same eviction policy in every mode: start early, short read leases.
EVICTION = ["--eviction_high_watermark_ratio", "0.8", "--eviction_ratio", "0.2",
            "--default_kv_lease_ttl", "100"]


def metric_sum(port, name):
    status, body = http_get(port, "/metrics", timeout=3.0)
    if status != 200:
        return None
    total, seen = 0.0, False
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(None, 1)[-1])
            seen = True
    return total if seen else None


def disk_only_keys(pool, keys):
    """The keys whose every replica is on disk now (the master's /batch_query_keys)."""
    out = set()
    for i in range(0, len(keys), 256):
        chunk = keys[i:i + 256]
        status, body = http_get(pool.metrics_port, "/batch_query_keys?keys=" + ",".join(chunk),
                                timeout=10.0)
        if status != 200:
            return None
        for k, d in json.loads(body).items():
            tiers = {r.get("tier") for r in d.get("replicas", [])}
            if tiers == {"local_disk"}:
                out.add(k)
    return out


def stamp(key, size):
    """size bytes: the key's digest, then random bytes."""
    head = hashlib.sha256(key.encode()).digest()
    return head + os.urandom(size - len(head))


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[i]


class Pool:
    def __init__(self, args, mode, tmp):
        spec = MODES[mode]
        self.tmp = tmp
        rpc, self.metrics_port = free_port(), free_port()
        self.master_addr = "127.0.0.1:%d" % rpc
        self.master = Proc("master", [
            args.ferry, "master", "--rpc_address", "127.0.0.1", "--rpc_port", rpc,
            "--metrics_port", self.metrics_port, *EVICTION, *spec["master"]],
            os.path.join(tmp, "master-%s.log" % mode))
        self.master.start(ready="listening on", timeout=30)
        self.member_port = free_port()
        extra = []
        if spec["member"]:
            self.ssd = tempfile.mkdtemp(prefix="ferry-ssd-bench-", dir=args.ssd_dir)
            extra = ["--enable_ssd_offload", "--ssd_offload_path", self.ssd]
        else:
            self.ssd = None
        self.member = Proc("member", [
            args.ferry, "store", "member", "--local_hostname", "127.0.0.1",
            "--master_server_address", self.master_addr, "--protocol", "tcp",
            "--global_segment_size", args.segment, "--metrics_port", self.member_port, *extra],
            os.path.join(tmp, "member-%s.log" % mode))
        self.member.start(ready="member ready", timeout=30)

    def close(self):
        self.member.stop()
        self.master.stop()
        if self.ssd:
            shutil.rmtree(self.ssd, ignore_errors=True)


def load(store, fs, keys, size, give_up_s):
    """Puts every key (a refused put is retried for a while: offloads may lag); returns
    (loaded, seconds)."""
    start = time.monotonic()
    loaded = 0
    for k in keys:
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                store.put(k, stamp(k, size))
                loaded += 1
                break
            except fs.StoreError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
    return loaded, time.monotonic() - start


def settle(pool, quiet=2.0, timeout=60):
    """Until the master's tier counters stop changing (offloads and evictions done)."""
    names = ("ferry_store_keys", "ferry_store_evictions_total", "ferry_store_offloads_total")
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = tuple(metric_sum(pool.metrics_port, n) for n in names)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


def chooser(keys, dist, zipf_s, rng):
    if dist == "uniform":
        return lambda: keys[rng.randrange(len(keys))]
    order = list(keys)
    rng.shuffle(order)
    weights = [1.0 / (r + 1) ** zipf_s for r in range(len(order))]
    cdf, total = [], 0.0
    for w in weights:
        total += w
        cdf.append(total)
    return lambda: order[min(len(order) - 1, bisect.bisect_left(cdf, rng.random() * total))]


def read_phase(store, fs, keys, size, dist, seconds, zipf_s, seed, on_disk):
    rng = random.Random(seed)
    pick = chooser(keys, dist, zipf_s, rng)
    lat_all, lat_hit, hits, misses = [], [], 0, 0
    lat_tier = {"memory": [], "disk": []}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        k = pick()
        t0 = time.perf_counter()
        try:
            got = store.get(k)
        except fs.StoreError as e:
            dt = time.perf_counter() - t0
            if e.code != fs.ErrorCode.OBJECT_NOT_FOUND:
                raise SystemExit("get %s failed: %s" % (k, e))
            misses += 1
            lat_all.append(dt)
            continue
        dt = time.perf_counter() - t0
        if len(got) != size or bytes(got[:32]) != hashlib.sha256(k.encode()).digest():
            raise SystemExit("get %s returned wrong bytes (%d bytes)" % (k, len(got)))
        hits += 1
        lat_all.append(dt)
        lat_hit.append(dt)
        if on_disk is not None:
            lat_tier["disk" if k in on_disk else "memory"].append(dt)
    lat_all.sort()
    lat_hit.sort()
    for v in lat_tier.values():
        v.sort()
    n = hits + misses
    return dict(gets=n, hits=hits, hit_rate=hits / n if n else 0.0, gets_per_s=n / seconds,
                p50=percentile(lat_all, 50), p99=percentile(lat_all, 99),
                hit_p50=percentile(lat_hit, 50), hit_p99=percentile(lat_hit, 99),
                mem_p50=percentile(lat_tier["memory"], 50),
                disk_p50=percentile(lat_tier["disk"], 50),
                disk_p99=percentile(lat_tier["disk"], 99),
                disk_hits=len(lat_tier["disk"]))


def run_mode(args, mode, tmp, fs):
    pool = Pool(args, mode, tmp)
    try:
        store = fs.Store(pool.master_addr, local_hostname="127.0.0.1", global_segment_size=0,
                         protocol="tcp")
        size = fs.parse_size(args.object_size)
        n = fs.parse_size(args.working_set) // size
        keys = ["ws-%06d" % i for i in range(n)]
        loaded, load_s = load(store, fs, keys, size, args.put_give_up)
        settle(pool)
        out = {"loaded": loaded, "load_s": load_s, "objects": n, "dists": {}}
        for i, dist in enumerate(args.dists.split(",")):
            readbacks0 = metric_sum(pool.member_port, "ferry_store_disk_readbacks_total")
            on_disk = disk_only_keys(pool, keys)
            r = read_phase(store, fs, keys, size, dist, args.seconds, args.zipf_s,
                           args.seed + i, on_disk)
            r["disk_only_at_start"] = None if on_disk is None else len(on_disk)
            readbacks1 = metric_sum(pool.member_port, "ferry_store_disk_readbacks_total")
            r["disk_reads"] = (readbacks1 - readbacks0) if readbacks0 is not None and \
                readbacks1 is not None else None
            out["dists"][dist] = r
        out["keys_left"] = metric_sum(pool.metrics_port, "ferry_store_keys")
        store.close()
        return out
    finally:
        pool.close()


def ms(x):
    return "%.3f" % (x * 1e3) if x == x else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ferry", default="build/bin/ferry")
    p.add_argument("--segment", default="64MB", help="the member's DRAM")
    p.add_argument("--working-set", default="256MB")
    p.add_argument("--object-size", default="256K")
    p.add_argument("--seconds", type=float, default=10.0, help="per mode and distribution")
    p.add_argument("--dists", default="uniform,zipf")
    p.add_argument("--zipf-s", type=float, default=1.0)
    p.add_argument("--modes", default="off,on")
    p.add_argument("--ssd-dir", default="/var/tmp", help="where the bucket files go (a disk)")
    p.add_argument("--put-give-up", type=float, default=5.0,
                   help="seconds a refused put is retried while loading")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    try:
        import ferry.store as fs
    except ImportError as e:
        sys.exit("ferry.store not importable (PYTHONPATH=build/python): %s" % e)
    if not fs.HAS_STORE:
        sys.exit("this build of ferry has no store client")
    modes = args.modes.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            print("== mode %s: loading %s of %s objects into %s of DRAM" % (
                mode, args.working_set, args.object_size, args.segment), flush=True)
            results[mode] = run_mode(args, mode, tmp, fs)
            r = results[mode]
            print("   loaded %d/%d in %.1fs; %s keys left in the pool" % (
                r["loaded"], r["objects"], r["load_s"], r["keys_left"]), flush=True)

    print("\nSSD tier: working set %s, DRAM %s, objects %s, %.0fs per cell, tcp, one host" % (
        args.working_set, args.segment, args.object_size, args.seconds))
    head = "%-8s %-8s %8s %8s %9s %9s %9s %9s %9s %9s %9s %9s %10s" % (
        "dist", "mode", "loaded", "hit rate", "gets/s", "p50 ms", "p99 ms", "hit p50",
        "hit p99", "mem p50", "disk p50", "disk p99", "disk reads")
    print(head)
    print("-" * len(head))
    for dist in args.dists.split(","):
        for mode in modes:
            r = results[mode]["dists"][dist]
            print("%-8s %-8s %8d %7.1f%% %9.0f %9s %9s %9s %9s %9s %9s %9s %10s" % (
                dist, mode, results[mode]["loaded"], 100 * r["hit_rate"], r["gets_per_s"],
                ms(r["p50"]), ms(r["p99"]), ms(r["hit_p50"]), ms(r["hit_p99"]),
                ms(r["mem_p50"]), ms(r["disk_p50"]), ms(r["disk_p99"]),
                "-" if r["disk_reads"] is None else "%d" % r["disk_reads"]))
        if "off" in modes:
            base = results["off"]["dists"][dist]
            for mode in modes:
                if mode == "off":
                    continue
                r = results[mode]["dists"][dist]
                print("%-8s %-8s %8s %8s %9s %9s %9s   (%s / off)" % (
                    dist, "ratio", "",
                    "%.2fx" % (r["hit_rate"] / base["hit_rate"]) if base["hit_rate"] else "-",
                    "%.2fx" % (r["gets_per_s"] / base["gets_per_s"]) if base["gets_per_s"]
                    else "-",
                    "%.2fx" % (r["p50"] / base["p50"]) if base["p50"] else "-",
                    "%.2fx" % (r["p99"] / base["p99"]) if base["p99"] else "-", mode))
    print("(p50/p99: all gets, a miss included; hit p50/p99: gets that returned the object;\n"
          " mem/disk p50, p99: hits on keys that were in DRAM / disk-only when the cell began\n"
          " (with promotion, keys move during the cell); disk reads: the member's\n"
          " ferry_store_disk_readbacks_total over the cell)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
