"""Target process for the Python tests: registers a numpy buffer and answers commands.

    python3 peer.py --api ferry|mooncake --transport tcp|shm --size N --seed S
                    [--metadata P2PHANDSHAKE|http://...|etcd://...|host:port]

Prints one JSON line {"name", "addr", "size"}, then reads one JSON command per line on
stdin and answers with one JSON line:
  {"cmd": "digest", "offset": o, "length": n} -> {"sha256": hex of buf[o:o+n]}
  {"cmd": "notifies", "count": k}             -> {"notifies": [[name, msg], ...]} (waits
                                                 up to 5 s for k of them)
  {"cmd": "exit"}                             -> exits
The buffer starts as pattern(size, seed) (see expected_pattern).
"""

import argparse
import hashlib
import json
import sys
import time

import numpy as np


def expected_pattern(size, seed):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", default="ferry")
    ap.add_argument("--transport", default="tcp")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--metadata", default="P2PHANDSHAKE")
    args = ap.parse_args()
    buf = expected_pattern(args.size, args.seed)
    addr = buf.ctypes.data
    if args.api == "mooncake":
        from mooncake.engine import TransferEngine
        engine = TransferEngine()
        assert engine.initialize("127.0.0.1", args.metadata, args.transport, "") == 0
        assert engine.register_memory(addr, buf.nbytes) == 0
        name = engine.get_local_session_id()

        def take():
            return [[n.name, n.msg] for n in engine.get_notifies()]
    else:
        import ferry
        engine = ferry.TransferEngine("127.0.0.1:0", args.metadata, args.transport)
        engine.register(buf)
        name = engine.local_name

        def take():
            return [[n.sender, n.message.decode()] for n in engine.take_notifications()]
    print(json.dumps({"name": name, "addr": addr, "size": buf.nbytes}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "digest":
            o, n = cmd["offset"], cmd["length"]
            out = {"sha256": hashlib.sha256(buf[o:o + n].tobytes()).hexdigest()}
        elif cmd["cmd"] == "notifies":
            got, deadline = [], time.monotonic() + 5
            while len(got) < cmd.get("count", 1) and time.monotonic() < deadline:
                got += take()
                time.sleep(0.01)
            out = {"notifies": got}
        elif cmd["cmd"] == "exit":
            break
        else:
            out = {"error": "unknown command"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
