#!/usr/bin/env python3
"""Ferry's pool against the raw engine and against Mooncake's store, in one run.

    python3 bench/store_bench.py --ferry build/bin/ferry [--mooncake-python VENV/bin/python]

Runs `ferry bench store` (pool put/get beside the raw transfer engine, same sizes and
batches), then, when a Python with Mooncake's wheel is given, bench/store_mooncake_peer.py
(Mooncake's master, a member process and a client process, tcp, same sizes and batches),
and prints Ferry's GB/s, Mooncake's and the ratio per case. Set the peer up with

    python3 -m venv /tmp/venv-mooncake
    /tmp/venv-mooncake/bin/pip install mooncake-transfer-engine-non-cuda
    apt-get install -y libibverbs1 librdmacm1 libnuma1   # the wheel links them, even for tcp

Without a peer the Mooncake columns say why. Exit code 0 unless Ferry's bench failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_ferry(args, out):
    cmd = [args.ferry, "bench", "store", "--protocol", "tcp", "--sizes", args.sizes,
           "--batches", args.batches, "--seconds", str(args.seconds), "--json", out]
    r = subprocess.run(cmd, timeout=900)
    if r.returncode != 0:
        sys.exit("ferry bench store failed (%d)" % r.returncode)
    with open(out) as f:
        return json.load(f)


def run_peer(args, out):
    if not args.mooncake_python:
        return None, "no --mooncake-python given"
    cmd = [args.mooncake_python, os.path.join(HERE, "store_mooncake_peer.py"), "--sizes",
           args.sizes, "--batches", args.batches, "--json-out", out]
    try:
        r = subprocess.run(cmd, timeout=600, stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "the peer timed out"
    if r.returncode != 0 or not os.path.exists(out):
        return None, "the peer failed (%d)" % r.returncode
    with open(out) as f:
        return json.load(f), ""


def key(case):
    mode = case["mode"].replace("_", "-")
    if case["op"] in ("exist", "batch_is_exist", "is_exist"):
        return ("exist", case["size"], case["batch"])
    return (case["op"], mode, case["size"], case["batch"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ferry", default="build/bin/ferry")
    p.add_argument("--mooncake-python", default=os.environ.get("MOONCAKE_PYTHON", ""))
    p.add_argument("--sizes", default="4K,64K,1M,4M")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ferry = run_ferry(args, os.path.join(tmp, "ferry.json"))
        peer, why = run_peer(args, os.path.join(tmp, "peer.json"))
    theirs = {key(c): c for c in (peer or {}).get("cases", []) if c.get("objects_per_s")}
    print("\nFerry vs Mooncake's store (tcp, same machine, same run)")
    print("%-6s %-10s %8s %5s %10s %12s %8s %12s %12s" % (
        "op", "mode", "size", "batch", "ferry GB/s", "mooncake GB/s", "ratio", "ferry obj/s",
        "mooncake obj/s"))
    for c in ferry["cases"]:
        if c["mode"] == "raw":
            continue
        t = theirs.get(key(c))
        ratio = "%.2f" % (c["objects_per_s"] / t["objects_per_s"]) if t else "-"
        print("%-6s %-10s %8d %5d %10.3f %12s %8s %12.0f %12s" % (
            c["op"], c["mode"], c["size"], c["batch"], c["gbps"],
            "%.3f" % t["gbps"] if t else "-", ratio, c["objects_per_s"],
            "%.0f" % t["objects_per_s"] if t else "-"))
    if peer is None:
        print("(no Mooncake figures: %s)" % why)


if __name__ == "__main__":
    main()
