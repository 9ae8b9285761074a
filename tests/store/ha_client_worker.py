"""A long-running store client for the HA suite (store_ha_e2e_test.py): one ferry.store.Store
for the whole run, driven by JSON lines on stdin, one JSON answer per line on stdout.

    python3 ha_client_worker.py --master etcd://127.0.0.1:2379 [--rpc_timeout 8]
    -> {"ready": true}  (or {"error": "..."} and exit 1)

Every value is fresh random bytes; the worker keeps each acknowledged key's bytes, so
"verify" checks every acknowledged object byte for byte, and names a get that returned
another object's bytes ("foreign"). Commands:

  {"cmd": "put", "count": N, "deadline": S}  N acknowledged puts, each failed attempt retried
      under a new key, until S seconds are over -> {"acked", "failed", "errors", "first_ok_s"}
  {"cmd": "verify", "deadline": S}  gets every acknowledged key (a failed get is retried
      until S) -> {"checked", "mismatched", "foreign", "missing"}
  {"cmd": "loop_start"}  a thread that keeps putting new keys (up to --loop_cap) and getting
      random acknowledged ones; {"cmd": "stats"} / {"cmd": "loop_stop"} -> its counters
  {"cmd": "exit"}
"""

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_harness import answer_channel  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--master", required=True)
    p.add_argument("--rpc_timeout", type=float, default=8.0)
    p.add_argument("--min_size", type=int, default=512)
    p.add_argument("--max_size", type=int, default=48 << 10)
    p.add_argument("--loop_cap", type=int, default=1200, help="most keys the loop puts")
    p.add_argument("--prefix", default="w")
    args = p.parse_args()
    answer = answer_channel()

    try:
        import ferry.store as fs
        store = fs.Store(args.master, local_hostname="127.0.0.1", global_segment_size=0,
                         protocol="tcp", rpc_timeout=args.rpc_timeout)
    except Exception as e:  # noqa: BLE001 (reported to the test)
        answer({"error": "%s: %s" % (type(e).__name__, e)})
        return 1
    w = Worker(store, fs, args)
    answer({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            reply = w.handle(cmd)
        except Exception:  # noqa: BLE001
            reply = {"exception": traceback.format_exc()}
        answer(reply)
        if cmd["cmd"] == "exit":
            break
    w.stop_loop()
    store.close()
    return 0


class Worker:
    def __init__(self, store, fs, args):
        self.store, self.fs, self.args = store, fs, args
        self.lock = threading.Lock()
        self.acked = {}       # key -> bytes; GUARDED_BY(lock)
        self.by_digest = {}   # sha256 -> key, of every value ever written; GUARDED_BY(lock)
        self.next_id = 0      # GUARDED_BY(lock)
        self.loop = None
        self.running = False
        self.stats = dict(puts_ok=0, puts_failed=0, gets_ok=0, gets_failed=0, mismatched=[],
                          foreign=[], errors=[])

    def new_value(self):
        size = random.randint(self.args.min_size, self.args.max_size)
        value = os.urandom(size)
        with self.lock:
            key = "%s-%d" % (self.args.prefix, self.next_id)
            self.next_id += 1
            self.by_digest[hashlib.sha256(value).digest()] = key
        return key, value

    def check(self, key, got):
        """None when `got` is key's value; else ("mismatched"|"foreign", detail)."""
        with self.lock:
            want = self.acked[key]
            if got == want:
                return None
            other = self.by_digest.get(hashlib.sha256(bytes(got)).digest())
        if other is not None and other != key:
            return "foreign", "%s returned the bytes of %s" % (key, other)
        return "mismatched", "%s: %d bytes (sha256 %s), want %d" % (
            key, len(got), hashlib.sha256(bytes(got)).hexdigest()[:16], len(want))

    def put_one(self):
        key, value = self.new_value()
        self.store.put(key, value)
        with self.lock:
            self.acked[key] = value
        return key

    def handle(self, cmd):
        c = cmd["cmd"]
        if c == "put":
            return self.put(cmd["count"], cmd.get("deadline", 30))
        if c == "verify":
            return self.verify(cmd.get("deadline", 30))
        if c == "loop_start":
            self.start_loop()
            return {"ok": True}
        if c == "stats":
            return self.snapshot()
        if c == "loop_stop":
            self.stop_loop()
            return self.snapshot()
        if c == "count":
            with self.lock:
                return {"acked": len(self.acked)}
        if c == "exit":
            return {"ok": True}
        return {"exception": "unknown command %r" % c}

    def put(self, count, deadline):
        start = time.monotonic()
        acked, failed, errors, first_ok = [], 0, [], None
        while len(acked) < count and time.monotonic() - start < deadline:
            try:
                acked.append(self.put_one())
                if first_ok is None:
                    first_ok = time.monotonic() - start
            except self.fs.StoreError as e:
                failed += 1
                if len(errors) < 5:
                    errors.append("%.2fs %s" % (time.monotonic() - start, e))
                time.sleep(0.05)
        return {"acked": acked, "failed": failed, "errors": errors, "first_ok_s": first_ok,
                "seconds": time.monotonic() - start}

    def verify(self, deadline):
        start = time.monotonic()
        with self.lock:
            keys = list(self.acked)
        out = {"checked": 0, "mismatched": [], "foreign": [], "missing": {}}
        for key in keys:
            while True:
                try:
                    got = self.store.get(key)
                    break
                except self.fs.StoreError as e:
                    if time.monotonic() - start > deadline:
                        got = e
                        break
                    time.sleep(0.1)
            out["checked"] += 1
            if isinstance(got, Exception):
                out["missing"][key] = str(got)
                continue
            bad = self.check(key, got)
            if bad:
                out[bad[0]].append(bad[1])
        out["seconds"] = time.monotonic() - start
        return out

    # --- the background loop ----------------------------------------------------------
    def start_loop(self):
        if self.loop is not None:
            return
        self.running = True
        self.loop = threading.Thread(target=self.run_loop, daemon=True)
        self.loop.start()

    def stop_loop(self):
        self.running = False
        if self.loop is not None:
            self.loop.join(timeout=60)
            self.loop = None

    def snapshot(self):
        with self.lock:
            s = dict(self.stats)
            s["acked"] = len(self.acked)
            for k in ("mismatched", "foreign", "errors"):
                s[k] = list(s[k])
        return s

    def note(self, field, detail=None):
        with self.lock:
            if detail is None:
                self.stats[field] += 1
            elif len(self.stats[field]) < 20:
                self.stats[field].append(detail)

    def run_loop(self):
        put_count = 0
        while self.running:
            if put_count < self.args.loop_cap:
                put_count += 1
                try:
                    self.put_one()
                    self.note("puts_ok")
                except self.fs.StoreError as e:
                    self.note("puts_failed")
                    self.note("errors", "put: %s" % e)
            with self.lock:
                keys = random.sample(list(self.acked), min(3, len(self.acked)))
            for key in keys:
                try:
                    got = self.store.get(key)
                except self.fs.StoreError as e:
                    self.note("gets_failed")
                    self.note("errors", "get: %s" % e)
                    continue
                bad = self.check(key, got)
                if bad:
                    self.note(bad[0], bad[1])
                else:
                    self.note("gets_ok")
            time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
