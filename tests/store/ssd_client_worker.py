"""A store client for the SSD-tier suite (store_ssd_e2e_test.py), through Mooncake's Python
API (mooncake.store.MooncakeDistributedStore): one process, driven by JSON lines on stdin,
one JSON answer per line on stdout.

    python3 ssd_client_worker.py --master 127.0.0.1:PORT [--segment 0] [--setup positional|dict]
        [--ssd_dir DIR]        # a member with an SSD tier (enable_ssd_offload, ssd_offload_path)
    -> {"ready": true}  (or {"error": "..."} and exit 1)

Values are files: the value of key K is the file DIR/K that the test wrote. Commands:

  {"cmd": "put", "dir": D, "keys": [...], "batch": false | true | N}  one put per key, or
      put_batch of all keys (true) or of N keys at a time
      -> {"ok": [keys], "failed": {key: message}}
  {"cmd": "get", "dir": D, "keys": [...]}  each key read whole (ferry.store.Store.get, for the
      error message), compared with DIR/K
      -> {"exact": [keys], "mismatched": {key: "got N bytes, want M"}, "failed": {key: message}}
  {"cmd": "desc", "keys": [...]}  get_replica_desc(key) of each
      -> {key: [{"memory": b, "disk": b, "local_disk": b, "status": "COMPLETE"}]}
  {"cmd": "stress", "dir": D, "keys": [...], "threads": N, "seconds": S}  N threads get
      random keys for S seconds -> {"gets", "exact", "mismatched", "foreign", "failed"}
  {"cmd": "exit"}
"""

import argparse
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_harness import answer_channel  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--master", required=True)
    p.add_argument("--segment", default="0")
    p.add_argument("--setup", choices=("positional", "dict"), default="positional")
    p.add_argument("--ssd_dir", default="")
    args = p.parse_args()
    answer = answer_channel()

    try:
        from mooncake.store import MooncakeDistributedStore
        import ferry.store as fs
        store = MooncakeDistributedStore()
        ssd = bool(args.ssd_dir)
        if args.setup == "positional":
            rc = store.setup("127.0.0.1", "P2PHANDSHAKE", fs.parse_size(args.segment), 16 << 20,
                             "tcp", "", args.master, enable_ssd_offload=ssd,
                             ssd_offload_path=args.ssd_dir)
        else:
            config = {"local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
                      "global_segment_size": fs.parse_size(args.segment),
                      "local_buffer_size": 16 << 20, "protocol": "tcp", "rdma_devices": "",
                      "master_server_addr": args.master}
            if ssd:
                config.update(enable_ssd_offload=True, ssd_offload_path=args.ssd_dir)
            rc = store.setup(config)
        if rc != 0:
            answer({"error": "setup returned %d" % rc})
            return 1
    except Exception as e:  # noqa: BLE001 (reported to the test)
        answer({"error": "%s: %s" % (type(e).__name__, e)})
        return 1
    answer({"ready": True})
    inner = store.get_store()
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            reply = handle(store, inner, fs, cmd)
        except Exception:  # noqa: BLE001
            reply = {"exception": traceback.format_exc()}
        answer(reply)
        if cmd["cmd"] == "exit":
            break
    store.close()
    return 0


def value_of(d, key):
    with open(os.path.join(d, key), "rb") as f:
        return f.read()


def handle(store, inner, fs, cmd):
    c = cmd["cmd"]
    if c == "put":
        ok, failed = [], {}
        keys = cmd["keys"]
        batch = cmd.get("batch")
        if batch:
            step = len(keys) if batch is True else int(batch)
            for i in range(0, len(keys), step):
                chunk = keys[i:i + step]
                values = [value_of(cmd["dir"], k) for k in chunk]
                try:
                    inner.put_batch(chunk, values)
                    ok += chunk
                except fs.StoreBatchError as e:
                    for k, r in zip(chunk, e.results):
                        if isinstance(r, fs.StoreError):
                            failed[k] = str(r)
                        else:
                            ok.append(k)
                except fs.StoreError as e:
                    failed.update({k: str(e) for k in chunk})
            return {"ok": ok, "failed": failed}
        for k in keys:
            try:
                inner.put(k, value_of(cmd["dir"], k))
                ok.append(k)
            except fs.StoreError as e:
                failed[k] = str(e)
        return {"ok": ok, "failed": failed}
    if c == "get":
        out = {"exact": [], "mismatched": {}, "failed": {}}
        for k in cmd["keys"]:
            want = value_of(cmd["dir"], k)
            try:
                got = inner.get(k)
            except fs.StoreError as e:
                out["failed"][k] = str(e)
                continue
            if bytes(got) == want:
                out["exact"].append(k)
            else:
                out["mismatched"][k] = "got %d bytes, want %d" % (len(got), len(want))
        return out
    if c == "desc":
        out = {}
        for k in cmd["keys"]:
            out[k] = [{"memory": d.is_memory_replica(), "disk": d.is_disk_replica(),
                       "local_disk": d.is_local_disk_replica(), "status": d.status.name}
                      for d in store.get_replica_desc(k)]
        return out
    if c == "stress":
        return stress(inner, fs, cmd)
    if c == "exit":
        return {"ok": True}
    return {"exception": "unknown command %r" % c}


def stress(inner, fs, cmd):
    """cmd["threads"] threads get random keys of cmd["keys"] for cmd["seconds"]; every
    answer is compared with the key's value (and, when wrong, with every other value: a
    foreign object's bytes)."""
    import hashlib
    import random
    import threading
    import time
    values = {k: value_of(cmd["dir"], k) for k in cmd["keys"]}
    by_digest = {hashlib.sha256(v).digest(): k for k, v in values.items()}
    lock = threading.Lock()
    out = {"gets": 0, "exact": 0, "mismatched": [], "foreign": [], "failed": {}}
    end = time.monotonic() + float(cmd["seconds"])

    def run(seed):
        rng = random.Random(seed)
        keys = list(values)
        while time.monotonic() < end:
            k = rng.choice(keys)
            try:
                got = bytes(inner.get(k))
            except fs.StoreError as e:
                with lock:
                    out["gets"] += 1
                    out["failed"][k] = str(e)
                continue
            with lock:
                out["gets"] += 1
                if got == values[k]:
                    out["exact"] += 1
                    continue
                other = by_digest.get(hashlib.sha256(got).digest())
                if other is not None:
                    out["foreign"].append("%s returned the bytes of %s" % (k, other))
                else:
                    out["mismatched"].append("%s: %d bytes, want %d" % (
                        k, len(got), len(values[k])))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(int(cmd["threads"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


if __name__ == "__main__":
    sys.exit(main())
