#!/usr/bin/env python3
"""What vLLM's Mooncake connector does, with Ferry's drop-in engine.

A "prefill" process (the initiator) and a "decode" process (the target) each hold a paged
KV cache and register it. The prefill side writes the blocks of one request into the
blocks the decode side allocated for it, merging consecutive block runs into one request
each, and tells the decode side with a notification; the decode side checks every block.

    kv_cache: float32 [num_blocks, layers, 2 (K, V), block_size, heads, head_dim]
    block b lives at kv_cache.ctypes.data + b * block_bytes (block-major, C order)

Run:  PYTHONPATH=build/python /usr/bin/python3 python/examples/kv_cache_transfer.py
      [--protocol tcp|shm|rdma] ; prints "kv_cache_transfer OK ..." and exits 0.
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from mooncake.engine import TransferEngine, TransferNotify, TransferOpcode

SHAPE = dict(num_blocks=64, layers=4, block_size=16, heads=4, head_dim=32)


def make_cache():
    s = SHAPE
    return np.zeros((s["num_blocks"], s["layers"], 2, s["block_size"], s["heads"],
                     s["head_dim"]), dtype=np.float32)


def prefill_values(seed):
    """The KV values the prefill side computed (deterministic, so decode can check)."""
    cache = make_cache()
    cache[...] = np.random.default_rng(seed).standard_normal(cache.shape, dtype=np.float32)
    return cache


def merge_runs(src_blocks, dst_blocks):
    """[(src_start, dst_start, count)]: runs where both block ids are consecutive."""
    runs = []
    for s, d in zip(src_blocks, dst_blocks):
        if runs and runs[-1][0] + runs[-1][2] == s and runs[-1][1] + runs[-1][2] == d:
            runs[-1][2] += 1
        else:
            runs.append([s, d, 1])
    return [tuple(r) for r in runs]


def start_engine(protocol):
    engine = TransferEngine()
    if engine.initialize("127.0.0.1", "P2PHANDSHAKE", protocol, "") != 0:
        sys.exit("engine initialize failed")
    return engine


def decode(protocol):
    """Target: allocate and register the cache, publish its address, wait, verify."""
    engine = start_engine(protocol)
    cache = make_cache()
    if engine.register_memory(cache.ctypes.data, cache.nbytes) != 0:
        sys.exit("register_memory failed")
    print(json.dumps({"session": f"127.0.0.1:{engine.get_rpc_port()}",
                      "base": cache.ctypes.data}), flush=True)
    deadline, notes = time.monotonic() + 20, []
    while not notes and time.monotonic() < deadline:
        notes = engine.get_notifies()
        time.sleep(0.005)
    if not notes:
        sys.exit("decode: no notification")
    meta = json.loads(notes[0].msg)
    expect = prefill_values(meta["seed"])
    written = set(meta["dst"])
    for s, d in zip(meta["src"], meta["dst"]):
        if not np.array_equal(cache[d], expect[s]):
            sys.exit(f"decode: block {d} differs from prefill block {s}")
    untouched = [b for b in range(cache.shape[0]) if b not in written]
    if np.any(cache[untouched]):
        sys.exit("decode: a block outside the request was written")
    print(json.dumps({"verified": len(written), "request": notes[0].name}), flush=True)


def prefill(protocol):
    """Initiator: start the decode process, write the request's blocks, check its answer."""
    child = subprocess.Popen([sys.executable, __file__, "--role", "decode", "--protocol",
                              protocol], stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(child.stdout.readline())
        engine = start_engine(protocol)
        seed = 1234
        cache = prefill_values(seed)
        if engine.register_memory(cache.ctypes.data, cache.nbytes) != 0:
            sys.exit("register_memory failed")
        block_bytes = cache[0].nbytes
        src_blocks = [3, 4, 5, 9, 12, 13, 14, 30]   # this request's blocks in prefill
        dst_blocks = [0, 1, 2, 7, 20, 21, 22, 40]   # the blocks decode allocated for it
        runs = merge_runs(src_blocks, dst_blocks)
        local = [cache.ctypes.data + s * block_bytes for s, _, _ in runs]
        remote = [hello["base"] + d * block_bytes for _, d, _ in runs]
        lengths = [n * block_bytes for _, _, n in runs]
        batch = engine.batch_transfer_async_write(hello["session"], local, remote, lengths)
        if batch == 0 or engine.get_batch_transfer_status([batch]) != 0:
            sys.exit("prefill: KV write failed")
        meta = json.dumps({"seed": seed, "src": src_blocks, "dst": dst_blocks})
        if engine.transfer_sync(hello["session"], local[0], remote[0], 0,
                                TransferOpcode.Write, TransferNotify("req-42", meta)) != 0:
            sys.exit("prefill: notify failed")
        answer = json.loads(child.stdout.readline())
        if child.wait(timeout=20) != 0:
            sys.exit("prefill: decode side failed")
        print(f"kv_cache_transfer OK: {answer['verified']} blocks in {len(runs)} runs "
              f"({sum(lengths)} bytes) over {protocol}, request {answer['request']}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=["prefill", "decode"], default="prefill")
    ap.add_argument("--protocol", default="tcp")
    args = ap.parse_args()
    (prefill if args.role == "prefill" else decode)(args.protocol)


if __name__ == "__main__":
    main()
