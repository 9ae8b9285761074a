#!/usr/bin/env python3
"""Chaos soak: a real disaggregated Ferry deployment on this host, attacked while it serves.

    chaos_soak.py --ferry build/tools/ferry/ferry --duration 120 --json soak.json

What it does, in order:
  1. `ferry make-model` makes the tiny deterministic model.
  2. A colocated `ferry serve` (no connector) answers the fixed request set
     (soak_requests.build_request_set: completions and chat, streaming and not, various
     prompt lengths and max_tokens, all at temperature 0) twice; the answers are the
     reference (a request answered differently twice stops the run: exit 2).
  3. --prefill kv_producer and --decode kv_consumer instances (127.0.0.1, own ports, own
     VLLM_MOONCAKE_BOOTSTRAP_PORT, mooncake_protocol tcp) and `ferry proxy` start.
  4. --clients threads send random requests of the set through the proxy for --duration
     seconds, each with a client-side deadline of --request-timeout seconds, and classify
     each as correct / error / wrong / hung (soak_requests.py says exactly how).
  5. Unless --no-chaos, the main thread picks, every --interval seconds (seeded by
     --seed), a process (any prefill, decode or the proxy) and one of --actions:
       kill   SIGKILL, restart on the same ports after --restart-delay seconds
       pause  SIGSTOP for --pause seconds, then SIGCONT
       term   SIGTERM (its exit time is recorded), restart after --restart-delay seconds
     After each action it waits until the deployment is whole again (every process
     healthy and the proxy sees every instance healthy, --recovery-timeout at most)
     before the next interval starts; no action starts in the last --quiet-tail seconds
     plus the longest pause, so the run ends in a quiet stretch.
  6. A sampler records RSS, fds and threads of every long-lived process every
     --sample-interval seconds, one series per incarnation; soak_resources.judge decides
     whether each levels off (the rule is in soak_resources.py's docstring).
  7. Load stops, in-flight requests finish (each within its deadline), every process gets
     SIGTERM (its exit time is recorded too), and the report is printed and written.

Exit status: 0 pass; 1 a pass criterion failed (wrong > 0, hung > 0, a resource series
that does not level off, a SIGTERM exit over --sigterm-limit, a restart that did not come
back, a stuck client thread, a process left behind); 2 the harness could not run
(no reference, deployment did not start); 130 interrupted (the report is still printed
for what ran). Every child is stopped on every exit path (soak_processes.py).

Chaos and timeouts: VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT is --abort-timeout. The request
deadline must exceed the recovery time Ferry promises (a few seconds after a process
dies or resumes) and stay below the abort timeout: a request that waits out the abort
timeout has hung as far as its user is concerned, and with a deadline above the abort
timeout it would show up only as a slow answer.
"""

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import soak_processes  # noqa: E402
import soak_report  # noqa: E402
import soak_resources  # noqa: E402
import soak_requests  # noqa: E402
from soak_processes import Deployment, Proc, free_port  # noqa: E402

ACTIONS = ("kill", "pause", "term")


def seconds_range(text):
    parts = [float(x) for x in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 0 or parts[1] < parts[0]:
        raise argparse.ArgumentTypeError("want MIN,MAX seconds with 0 <= MIN <= MAX")
    return tuple(parts)


def action_list(text):
    acts = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in acts if a not in ACTIONS]
    if bad or not acts:
        raise argparse.ArgumentTypeError("actions are a comma list of %s" % ",".join(ACTIONS))
    return acts


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ferry", required=True, help="the ferry binary")
    ap.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--seed", type=int, default=1, help="seeds chaos and request choice")
    ap.add_argument("--prefill", type=int, default=2, help="prefill instances (default 2)")
    ap.add_argument("--decode", type=int, default=1, help="decode instances (default 1)")
    ap.add_argument("--request-timeout", type=float, default=30,
                    help="client deadline per request, seconds (default 30)")
    ap.add_argument("--abort-timeout", type=float, default=45,
                    help="VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT, seconds (default 45)")
    ap.add_argument("--json", help="write the result object here")
    ap.add_argument("--no-chaos", action="store_true", help="load only (a baseline)")
    ap.add_argument("--actions", type=action_list, default=list(ACTIONS),
                    help="chaos actions to use (default kill,pause,term)")
    ap.add_argument("--interval", type=seconds_range, default=(3, 8),
                    help="seconds between chaos actions, MIN,MAX (default 3,8)")
    ap.add_argument("--pause", type=seconds_range, default=(1, 10),
                    help="SIGSTOP length, MIN,MAX seconds (default 1,10)")
    ap.add_argument("--restart-delay", type=seconds_range, default=(0.2, 3),
                    help="seconds from a kill or exit to the restart (default 0.2,3)")
    ap.add_argument("--recovery-timeout", type=float, default=60,
                    help="longest wait for the deployment to be whole after an action")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of load before chaos")
    ap.add_argument("--quiet-tail", type=float, default=15,
                    help="chaos-free seconds at the end of the load (default 15)")
    ap.add_argument("--sigterm-limit", type=float, default=5,
                    help="longest allowed SIGTERM-to-exit time, seconds (default 5)")
    ap.add_argument("--sample-interval", type=float, default=2,
                    help="seconds between resource samples (default 2)")
    ap.add_argument("--health-interval", type=float, default=0.5,
                    help="the proxy's --health-interval (default 0.5)")
    ap.add_argument("--load-failure-policy", default="recompute", choices=("recompute", "fail"),
                    help="FERRY_KV_LOAD_FAILURE_POLICY of the decoders")
    ap.add_argument("--stacks", action="store_true",
                    help="at the first hang (or failed recovery) save gdb stack traces of "
                    "every process to the workdir (gdb takes ~30 s here, the run goes on)")
    ap.add_argument("--slow", type=float, default=10,
                    help="count correct answers slower than this many seconds (default 10)")
    ap.add_argument("--workdir", help="keep model, logs and records here (default: a "
                    "temporary directory, removed after a pass)")
    args = ap.parse_args(argv)
    if args.prefill < 1 or args.decode < 1 or args.clients < 1:
        ap.error("--prefill, --decode and --clients must be at least 1")
    args.ferry = os.path.abspath(args.ferry)
    if not os.access(args.ferry, os.X_OK):
        ap.error("--ferry %s is not an executable" % args.ferry)
    return args


class Soak:
    """One run. The main thread owns the processes and the chaos; client threads and the
    sampler only read (Proc.snapshot) and append records under _lock."""

    def __init__(self, args, workdir, base_env):
        self.args = args
        self.workdir = workdir
        self.base_env = base_env
        self.t0 = time.monotonic()
        self.procs = []  # every Proc made, for clean-up
        self.deployment = None
        self.specs = soak_requests.build_request_set()
        self.reference = {}
        self._lock = threading.Lock()
        self.requests = soak_report.RequestLog(os.path.join(workdir, "failed_requests.jsonl"))
        self.actions = []
        self.sigterms = []
        self.stop_load = threading.Event()
        self.clients = []
        self.sampler = None
        self.load_started = None
        self.load_ended = None
        self.stuck_clients = 0
        self.harness_errors = 0  # GUARDED_BY(_lock)
        self.interrupted = False
        self._last_progress = 0.0
        self.hang_seen = threading.Event()
        self.stack_files = []
        self.stack_captures = 0
        self._chaos_log = open(os.path.join(workdir, "chaos.log"), "w")

    def now(self):
        return time.monotonic() - self.t0

    def log(self, msg):
        line = "[%s t=%7.1fs] %s" % (time.strftime("%H:%M:%S"), self.now(), msg)
        with self._lock:
            print(line, flush=True)
            self._chaos_log.write(line + "\n")
            self._chaos_log.flush()

    # ---- set-up ----------------------------------------------------------------------
    def make_model(self):
        model = os.path.join(self.workdir, "model")
        with open(os.path.join(self.workdir, "make-model.log"), "wb") as log:
            subprocess.run(["setpriv", "--pdeathsig", "KILL", "--", self.args.ferry,
                            "make-model", model], env=self.base_env, stdout=log,
                           stderr=subprocess.STDOUT, timeout=300, check=True)
        return model

    def compute_reference(self, model):
        port = free_port()
        ref = Proc("reference", "reference",
                   [self.args.ferry, "serve", model, "--host", "127.0.0.1", "--port", str(port)]
                   + Deployment.SERVE_ARGS, self.base_env,
                   os.path.join(self.workdir, "reference.log"), port)
        self.procs.append(ref)
        ref.start()
        if not ref.wait_healthy(60):
            return "reference server not healthy within 60 s:\n" + ref.log_tail()
        self.reference, problems = soak_requests.reference_answers("127.0.0.1", port, self.specs)
        took, rc = ref.terminate_timed(self.args.sigterm_limit, 30)
        self.record_sigterm("reference", ref, took, rc, 30)
        if problems:
            return "reference answers unusable:\n  " + "\n  ".join(problems)
        self.log("reference: %d requests answered identically twice by a colocated server" %
                 len(self.reference))
        return ""

    def record_sigterm(self, when, proc, took, rc, gave_up_s):
        self.sigterms.append({"when": when, "process": proc.name, "t": round(self.now(), 2),
                              "seconds": None if took is None else round(took, 3), "rc": rc,
                              "gave_up_s": gave_up_s})
        if took is None or took > self.args.sigterm_limit:
            self.log("SIGTERM: %s (%s) took %s s to exit (limit %.1f s)" % (
                proc.name, when, ">%d" % gave_up_s if took is None else "%.2f" % took,
                self.args.sigterm_limit))

    # ---- load ------------------------------------------------------------------------
    def client_loop(self, idx):
        rng = random.Random(self.args.seed * 1009 + idx)
        port = self.deployment.proxy.port
        n = 0
        while not self.stop_load.is_set():
            spec = rng.choice(self.specs)
            rid = "soak-c%d-%d" % (idx, n)
            n += 1
            t_start = self.now()
            try:
                o = soak_requests.send("127.0.0.1", port, spec, self.args.request_timeout, rid)
            except Exception as e:  # noqa: BLE001 -- a harness defect; counted, fails the run
                self.log("HARNESS: %s raised %r" % (rid, e))
                with self._lock:
                    self.harness_errors += 1
                self.stop_load.wait(1)
                continue
            t_end = self.now()
            expected = self.reference[spec.id]
            if o.outcome == "correct" and o.text != expected:
                o = soak_requests.Outcome("wrong", "text_differs",
                                          "got %r, want %r" % (o.text[:80], expected[:80]),
                                          o.text, o.status)
            rec = {"id": rid, "spec": spec.id, "client": idx, "outcome": o.outcome,
                   "kind": o.kind, "detail": o.detail, "status": o.status,
                   "t_start": round(t_start, 3), "t_end": round(t_end, 3),
                   "latency_s": round(t_end - t_start, 4)}
            self.requests.add(rec)
            if o.outcome == "hung":
                self.hang_seen.set()
            if o.outcome in ("hung", "wrong"):
                self.log("%s: %s %s (%s) after %.1fs: %s" % (o.outcome.upper(), rid, spec.id,
                                                           o.kind, t_end - t_start, o.detail))
            if o.outcome == "error":
                # Back off a little, so that a dead proxy is not hammered in a tight loop.
                self.stop_load.wait(0.25)

    def start_load(self):
        self.load_started = self.now()
        self.sampler = soak_resources.Sampler(self.deployment.procs, self.args.sample_interval,
                                              self.t0)
        self.sampler.start()
        for i in range(self.args.clients):
            t = threading.Thread(target=self.client_loop, args=(i,), name="soak-client-%d" % i,
                                 daemon=True)
            t.start()
            self.clients.append(t)

    def end_load(self, wait_s):
        """Stops new requests, waits up to wait_s for the in-flight ones, stops sampling."""
        self.stop_load.set()
        self.load_ended = self.now()
        deadline = time.monotonic() + wait_s
        for t in self.clients:
            t.join(max(0.0, deadline - time.monotonic()))
        self.stuck_clients = sum(1 for t in self.clients if t.is_alive())
        if self.sampler:
            self.sampler.stop()

    def progress(self):
        c = self.requests.counts()
        self.log("progress: %d requests: %s; %d chaos actions" % (
            sum(c.values()), ", ".join("%s %d" % kv for kv in c.items()), len(self.actions)))

    def sleep_until(self, t):
        """Sleeps until t (seconds since start), printing progress every 30 s."""
        while self.now() < t:
            time.sleep(min(0.5, max(0.0, t - self.now())))
            if self.now() - self._last_progress >= 30:
                self._last_progress = self.now()
                self.progress()
            if self.hang_seen.is_set():
                self.capture_stacks("a request hung")

    def capture_stacks(self, reason):
        """Once a run (main thread only): saves `gdb thread apply all bt` of every running
        process of the deployment, all at once, to stacks-NAME.INCARNATION-tT.txt: what a
        hung or wedged server waits on. The symbols are read before gdb attaches, so each
        process is stopped for a few seconds only; the run has failed by then anyway."""
        self.hang_seen.clear()
        if not self.args.stacks or self.stack_captures >= 1 or not shutil.which("gdb"):
            return
        self.stack_captures += 1
        self.log("saving stack traces (%s)" % reason)
        jobs = []
        for p in self.deployment.procs:
            pid, inc = p.snapshot()
            if pid is None:
                continue
            path = os.path.join(self.workdir, "stacks-%s.%d-t%d.txt" % (p.name, inc, self.now()))
            out = open(path, "wb")
            jobs.append((path, out, subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", "gdb", "-batch", "-nx",
                 "-ex", "file " + self.args.ferry, "-ex", "attach %d" % pid,
                 "-ex", "thread apply all bt 25", "-ex", "detach"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.base_env, start_new_session=True)))
        for path, out, g in jobs:
            try:
                g.wait(60)
            except subprocess.TimeoutExpired:
                g.kill()
                g.wait()
                out.write(b"\ngdb did not finish within 60 s\n")
            out.close()
            self.stack_files.append(path)
        self.log("stack traces in %s" % ", ".join(os.path.basename(j[0]) for j in jobs))

    # ---- chaos -----------------------------------------------------------------------
    def restart(self, proc, rec):
        for attempt in range(3):
            proc.start()
            if proc.wait_healthy(60):
                rec["restart_ok"] = True
                return
            self.log("restart of %s (attempt %d) failed: %s" % (
                proc.name, attempt + 1, proc.log_tail(5).replace("\n", " | ")))
            proc.signal_group(signal.SIGKILL)
            proc.wait_exit(10)
            time.sleep(1)
        rec["restart_ok"] = False

    def act(self, rng, end_t):
        """One chaos action, then a wait (until end_t at most) for the deployment to be
        whole again."""
        a = self.args
        target = rng.choice(self.deployment.procs)
        action = rng.choice(a.actions)
        pid, inc = target.snapshot()
        # Times in ms, floored at the start and ceiled at the end, so that every request
        # the action touched lies inside [t, recovered_t] (soak_report.chaos_windows).
        rec = {"t": math.floor(self.now() * 1000) / 1000, "wall": time.strftime("%H:%M:%S"),
               "target": target.name, "role": target.role, "action": action, "pid": pid,
               "incarnation": inc}
        if action == "pause":
            secs = rng.uniform(*a.pause)
            rec["paused_s"] = round(secs, 2)
            self.log("chaos: SIGSTOP %s (pid %s) for %.1fs" % (target.name, pid, secs))
            target.signal_group(signal.SIGSTOP)
            try:
                time.sleep(secs)
            finally:
                target.signal_group(signal.SIGCONT)
        else:
            delay = rng.uniform(*a.restart_delay)
            rec["restart_delay_s"] = round(delay, 2)
            if action == "kill":
                self.log("chaos: SIGKILL %s (pid %s), restart in %.1fs" % (target.name, pid,
                                                                           delay))
                target.signal_group(signal.SIGKILL)
                target.wait_exit(10)
            else:
                self.log("chaos: SIGTERM %s (pid %s), restart in %.1fs" % (target.name, pid,
                                                                           delay))
                gave_up = max(30, int(4 * a.sigterm_limit))
                took, rc = target.terminate_timed(a.sigterm_limit, gave_up)
                rec.update(exit_s=None if took is None else round(took, 3), rc=rc,
                           gave_up_s=gave_up)
                self.record_sigterm("chaos", target, took, rc, gave_up)
            time.sleep(delay)
            self.restart(target, rec)
        done = self.now()
        rec["done_t"] = math.ceil(done * 1000) / 1000
        # The load ends at end_t whatever happens: a deployment that is still broken then
        # is reported as not recovered.
        ok = self.deployment.wait_recovered(min(a.recovery_timeout, max(1.0, end_t - done)))
        rec["recovered"] = ok
        rec["recovered_t"] = math.ceil(self.now() * 1000) / 1000 if ok else None
        rec["recovery_s"] = round(self.now() - done, 2) if ok else None
        if not ok:
            rec["unhealthy"] = self.deployment.unhealthy()
            self.log("chaos: still not whole: %s" % "; ".join(rec["unhealthy"]))
            self.capture_stacks("not whole %.0f s after %s %s" % (self.now() - done, action,
                                                                 target.name))
        self.actions.append(rec)
        self.log("chaos: %s %s done; %s" % (
            action, target.name, "all healthy %.1fs later" % rec["recovery_s"] if ok else
            "NOT whole again after %.0fs" % (self.now() - done)))

    def chaos_loop(self, end_t):
        a = self.args
        rng = random.Random(a.seed)
        longest = max(a.pause[1] if "pause" in a.actions else 0, a.restart_delay[1] + 5)
        last_start = end_t - a.quiet_tail - longest
        next_t = self.now() + a.warmup
        while next_t <= last_start:
            self.sleep_until(next_t)
            self.act(rng, end_t)
            next_t = self.now() + rng.uniform(*a.interval)
        self.sleep_until(end_t)

    # ---- the run ---------------------------------------------------------------------
    def run(self):
        a = self.args
        if a.request_timeout >= a.abort_timeout:
            self.log("note: --request-timeout %.0f >= --abort-timeout %.0f: a request stuck "
                     "until the abort timeout shows up as slow, not hung" %
                     (a.request_timeout, a.abort_timeout))
        model = self.make_model()
        problem = self.compute_reference(model)
        if problem:
            self.log(problem)
            return 2
        self.deployment = Deployment(a.ferry, model, self.workdir, a.prefill, a.decode,
                                     self.base_env, a.abort_timeout, a.load_failure_policy,
                                     a.health_interval)
        self.procs += self.deployment.procs
        problem = self.deployment.start()
        if problem:
            self.log(problem)
            return 2
        self.log("deployment up: %s; proxy on 127.0.0.1:%d; logs in %s" % (
            ", ".join("%s :%d" % (p.name, p.port) for p in self.deployment.procs),
            self.deployment.proxy.port, self.workdir))
        self.start_load()
        end_t = self.now() + a.duration
        try:
            if a.no_chaos:
                self.sleep_until(end_t)
            else:
                self.chaos_loop(end_t)
            self.end_load(a.request_timeout + 10)
        except KeyboardInterrupt:
            self.interrupted = True
            self.log("interrupted: stopping the load (a second Ctrl-C stops at once)")
            self.end_load(2)
        self.log("load over; stopping the deployment with SIGTERM")
        gave_up = max(15, int(3 * a.sigterm_limit))  # bounds the run: 4 processes or more
        for p in [self.deployment.proxy] + self.deployment.decodes + self.deployment.prefills:
            took, rc = p.terminate_timed(a.sigterm_limit, gave_up)
            self.record_sigterm("final", p, took, rc, gave_up)
        return 130 if self.interrupted else 0

    def result(self, strays):
        a = self.args
        series = self.sampler.series() if self.sampler else []
        res = {
            "config": {"duration": a.duration, "clients": a.clients, "seed": a.seed,
                       "prefill": a.prefill, "decode": a.decode,
                       "request_timeout": a.request_timeout, "abort_timeout": a.abort_timeout,
                       "chaos": not a.no_chaos, "actions": a.actions,
                       "interval": a.interval, "pause": a.pause,
                       "restart_delay": a.restart_delay, "sigterm_limit": a.sigterm_limit,
                       "sample_interval": a.sample_interval,
                       "health_interval": a.health_interval,
                       "load_failure_policy": a.load_failure_policy, "ferry": a.ferry},
            "interrupted": self.interrupted,
            "load_seconds": round((self.load_ended or self.now()) - (self.load_started or 0), 1)
            if self.load_started is not None else 0,
            "requests": self.requests.stats(self.actions, a.slow),
            "hung_examples": [dict(id=r["id"], kind=r["kind"], t_start=r["t_start"],
                                   t_end=r["t_end"],
                                   during=soak_report.overlapping_actions(r, self.actions))
                              for r in self.requests.failed("hung")][:20],
            "chaos": {"actions": self.actions,
                      "counts": {act: sum(1 for x in self.actions if x["action"] == act)
                                 for act in a.actions} if not a.no_chaos else {}},
            "sigterm": self.sigterms,
            "resources": soak_resources.evaluate(series, a.clients),
            "log_digest": soak_report.log_digest(soak_report.log_paths(self.procs)),
            "stuck_clients": self.stuck_clients,
            "harness_errors": self.harness_errors,
            "stack_files": self.stack_files,
            "strays": strays,
            "workdir": self.workdir,
        }
        res["failures"] = soak_report.criteria(res, a.sigterm_limit)
        res["ok"] = not res["failures"] and not self.interrupted
        return res


def main(argv):
    args = parse_args(argv)
    run_id = os.urandom(8).hex()
    marker = "FERRY_SOAK_RUN=" + run_id
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(
        prefix="ferry-soak-")
    os.makedirs(workdir, exist_ok=True)
    base_env = dict(os.environ, FERRY_SOAK_RUN=run_id)

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_term)
    soak = Soak(args, workdir, base_env)
    rc = 2
    try:
        rc = soak.run()
    except KeyboardInterrupt:
        soak.interrupted = True
        rc = 130
        print("interrupted; stopping everything", flush=True)
    except Exception as e:  # noqa: BLE001 -- any harness failure still cleans up
        import traceback
        traceback.print_exc()
        soak.log("harness error: %r" % e)
        rc = 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        soak.stop_load.set()
        soak_processes.stop_all(soak.procs)
        if soak.sampler and soak.sampler.is_alive():
            soak.sampler.stop()
    strays = soak_processes.find_strays(marker)
    for pid, _ in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if soak.load_started is not None:
        res = soak.result(["%d %s" % s for s in strays])
        print()
        print(soak_report.human(res), flush=True)
        out = args.json or os.path.join(workdir, "result.json")
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        if args.json:
            print("result: %s" % args.json)
        if rc == 0 and res["failures"]:
            rc = 1
    elif strays:
        print("processes left behind: %s" % strays)
        rc = rc or 1
    if rc == 0 and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif rc != 0:
        print("logs kept in %s" % workdir)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
