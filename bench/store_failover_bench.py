#!/usr/bin/env python3
"""How long the pool cannot take writes when its master's leader dies.

    python3 bench/store_failover_bench.py --ferry build/bin/ferry [--rounds 10] [--masters 3]

Measures the master's failover time: an etcd, 2-3 `ferry master`s in HA mode
(--ha_lease_ttl 2s: one leader, the others standby), a `ferry store member` and one client
that keeps putting 4 KiB objects in a loop (every 5 ms; the ferry.store module in this
process, or `ferry store put` processes with --client cli). Each round kills the leader with
SIGKILL and times from the kill to the end of the first successful put issued after it
(the client finds the new leader through etcd and retries), then restarts the killed master
as a standby. Prints each round, p50 and max, and the target (< 3 s with a 2 s lease: the
lease running out, then the takeover and the client's retry within about a second).

Exit code 0 unless the setup failed or a round saw no successful put within --give_up
seconds; --strict also fails when max exceeds the target.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "store"))
from store_harness import Etcd, Proc, free_port, http_get, http_json, wait_for  # noqa: E402


class Masters:
    def __init__(self, args, etcd, tmp, cluster_id):
        self.ports = [(free_port(), free_port()) for _ in range(args.masters)]
        self.procs = [Proc("master%d" % i, [
            args.ferry, "master", "--rpc_address", "127.0.0.1", "--rpc_port", rpc,
            "--metrics_port", metrics, "--etcd_endpoints", etcd.endpoint,
            "--cluster_id", cluster_id, "--ha_lease_ttl", args.lease, "--client_ttl", "10"],
            os.path.join(tmp, "master%d.log" % i)) for i, (rpc, metrics) in enumerate(self.ports)]

    def start(self, i):
        metrics = self.ports[i][1]
        self.procs[i].start(ready=lambda: http_get(metrics, "/health")[0] == 200, timeout=30)

    def info(self, i):
        return http_json(self.ports[i][1], "/leader", timeout=0.5)

    def leader(self, exclude=None, above_term=-1, timeout=30):
        """(index, /leader JSON) of the one master that says leader."""
        def find():
            found = [(i, self.info(i)) for i in range(len(self.procs))
                     if i != exclude and self.procs[i].alive()]
            found = [(i, x) for i, x in found if x and x.get("role") == "leader" and
                     x.get("term", 0) > above_term]
            return found[0] if len(found) == 1 else None
        return wait_for("a leader", find, timeout, interval=0.05)

    def standby(self, i, leader_address, timeout=30):
        wait_for("master%d to be a standby" % i, lambda: (lambda x: x and x.get("role") ==
                 "standby" and x.get("leader") == leader_address)(self.info(i)), timeout)


class PutLoop:
    """A thread putting a new 4 KiB object every `interval` s; records (start, end, ok)."""

    def __init__(self, put, interval=0.005):
        self.put, self.interval = put, interval
        self.lock = threading.Lock()
        self.records = []
        self.errors = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        while self.running:
            n += 1
            start = time.monotonic()
            try:
                self.put("fo-%d" % n, os.urandom(4096))
                error = None
            except Exception as e:  # noqa: BLE001 (a failed put is what we time)
                error = str(e)
                with self.lock:
                    if len(self.errors) < 5:
                        self.errors.append(error[:200])
            with self.lock:
                self.records.append((start, time.monotonic(), error))
            time.sleep(self.interval)

    def first_ok_after(self, t):
        with self.lock:
            ends = [end for start, end, error in self.records if error is None and start >= t]
        return min(ends) if ends else None

    def failures(self, t0, t1):
        """[(start, end, error)] of the puts that failed, ending in [t0, t1]."""
        with self.lock:
            return [(s - t0, e - t0, err) for s, e, err in self.records
                    if err is not None and t0 <= e <= t1]

    def stop(self):
        self.running = False
        self.thread.join(timeout=60)


def python_client(args, url):
    ferry_python = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.ferry))),
                                "python")
    sys.path.insert(0, ferry_python)
    import ferry.store as fs  # noqa: E402 (found through --ferry's build tree)
    if not fs.HAS_STORE:
        raise ImportError("ferry.store has no store client in this build")
    store = fs.Store(url, local_hostname="127.0.0.1", protocol="tcp",
                     rpc_timeout=args.rpc_timeout)
    return store.put, store.close


def cli_client(args, url):
    def put(key, value):
        with tempfile.NamedTemporaryFile() as f:
            f.write(value)
            f.flush()
            r = subprocess.run([args.ferry, "store", "put", key, "--file", f.name,
                                "--master_server_address", url, "--local_hostname",
                                "127.0.0.1", "--protocol", "tcp", "--rpc_timeout_ms",
                                str(int(args.rpc_timeout * 1000))],
                               capture_output=True, timeout=args.rpc_timeout + 30)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode(errors="replace").strip())
    return put, lambda: None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ferry", default="build/bin/ferry")
    p.add_argument("--masters", type=int, default=3, choices=(2, 3, 4, 5))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--lease", default="2s", help="--ha_lease_ttl of the masters")
    p.add_argument("--target", type=float, default=3.0, help="seconds")
    p.add_argument("--rpc_timeout", type=float, default=5.0, help="the client's, seconds")
    p.add_argument("--client", choices=("python", "cli"), default="python")
    p.add_argument("--give_up", type=float, default=30.0, help="seconds per round")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--strict", action="store_true", help="exit 1 when max > target")
    args = p.parse_args()
    cluster_id = "ferry-failover-bench-%d" % os.getpid()
    os.environ["MC_STORE_CLUSTER_ID"] = cluster_id  # the client in this process, members
    procs, close_client, loop = [], lambda: None, None
    failovers, rows = [], []
    with tempfile.TemporaryDirectory(prefix="ferry-failover-") as tmp:
        try:
            etcd = Etcd(tmp)
            procs.append(etcd)
            masters = Masters(args, etcd, tmp, cluster_id)
            procs += masters.procs
            for i in range(args.masters):
                masters.start(i)
            leader, info = masters.leader()
            member = Proc("member", [args.ferry, "store", "member", "--local_hostname",
                                     "127.0.0.1", "--master_server_address", etcd.url,
                                     "--protocol", "tcp", "--global_segment_size", "256MB"],
                          os.path.join(tmp, "member.log"))
            procs.append(member)
            member.start(ready="member ready", timeout=30)
            try:
                put, close_client = (python_client if args.client == "python" else
                                     cli_client)(args, etcd.url)
            except ImportError as e:
                print("(the python client is unavailable: %s; using `ferry store put`)" % e)
                args.client = "cli"
                put, close_client = cli_client(args, etcd.url)
            loop = PutLoop(put)
            wait_for("a first put", lambda: loop.first_ok_after(0), 30)
            for r in range(1, args.rounds + 1):
                for i in range(args.masters):  # every standby follows the leader
                    if i != leader:
                        masters.standby(i, info["leader"])
                time.sleep(0.5)  # puts flowing through the leader
                killed = masters.procs[leader]
                t_kill = time.monotonic()
                killed.kill()
                try:  # when /leader names the new one (the client's put comes after)
                    new, new_info = masters.leader(exclude=leader, above_term=info["term"],
                                                   timeout=args.give_up)
                    elected = time.monotonic() - t_kill
                except AssertionError:
                    sys.exit("round %d: no new leader within %.0fs" % (r, args.give_up))
                try:
                    done = wait_for("a put after the kill", lambda: loop.first_ok_after(t_kill),
                                    args.give_up, interval=0.01)
                except AssertionError:
                    sys.exit("round %d: no successful put within %.0fs of the kill (%s)" % (
                        r, args.give_up, loop.errors))
                seconds = done - t_kill
                failed = loop.failures(t_kill, done)
                failovers.append(seconds)
                rows.append({"round": r, "failover_s": seconds, "elected_s": elected,
                             "leader": new_info["leader"], "term": new_info["term"],
                             "failed_puts": [list(f) for f in failed[:5]]})
                print("round %2d  failover %6.3f s  (leader elected after %.3f s, %d failed "
                      "put(s))  new leader %s" % (r, seconds, elected, len(failed),
                                                 new_info["leader"]), flush=True)
                for f in failed[:2]:
                    print("          failed put [%.3f, %.3f] s: %s" % (f[0], f[1], f[2][:160]))
                masters.start(leader)  # back as a standby
                leader, info = new, new_info
        except AssertionError as e:
            sys.exit("setup failed: %s\n%s" % (e, "\n".join(
                "--- %s\n%s" % (x.name, x.log(whole=True)[-2000:]) for x in procs
                if x.popen is not None)))
        finally:
            if loop is not None:
                loop.stop()
            close_client()
            for x in reversed(procs):
                x.kill()
    p50, worst = statistics.median(failovers), max(failovers)
    verdict = "met" if worst < args.target else "MISSED"
    print("\nMaster failover (kill -9 the leader; %d masters, --ha_lease_ttl %s, %s client, "
          "%d rounds)" % (args.masters, args.lease, args.client, args.rounds))
    print("%-10s %10s %10s %10s" % ("", "p50 s", "max s", "target s"))
    print("%-10s %10.3f %10.3f %10s   (%s)" % ("failover", p50, worst, "< %g" % args.target,
                                               verdict))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rows, "p50_s": p50, "max_s": worst, "target_s": args.target,
                       "masters": args.masters, "lease": args.lease, "client": args.client},
                      f, indent=1)
    if args.strict and worst >= args.target:
        sys.exit(1)


if __name__ == "__main__":
    main()
