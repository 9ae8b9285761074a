"""Resource series of the soak's long-lived processes, and whether they level off.

`Sampler` is a thread that every `interval_s` reads, for each running process,
  rss      VmRSS of /proc/PID/status, in KiB
  fds      the entries of /proc/PID/fd
  threads  Threads of /proc/PID/status
into one series per incarnation (a restart starts a new series).

The level-off rule (`judge`): split a series into thirds by sample count, take the maximum
of the middle third (M) and of the last third (L). The series levels off when
    L <= M + max(abs_tol, rel_tol * M).
The first third is start-up and warm-up (caches filling, the KV pool being touched) and is
ignored. A leak grows without bound, so the last third's peak exceeds the middle third's
by a third of the whole growth; a bounded resource reaches its peak early (load is
bounded by the client count) and the last third's peak stays within noise of it.
A leak also keeps what it took, so the series is judged "grows" only when its final
sample is above the limit too: a burst in the last third that has drained again by the
end (connections piling up while a peer restarts, then closed) is bounded, not a leak. The
tolerances (TOLERANCES) absorb allocator noise and per-request resources: one in-flight
request holds a few fds and threads in the proxy, so they scale with --clients. A series
of fewer than MIN_SAMPLES samples (an incarnation that lived only a little while) is
reported as "short" and not judged. A 2-minute run catches fast leaks; slow ones need the
hour-long run, where the thirds are 20 minutes each.
"""

import os
import threading
import time

MIN_SAMPLES = 12
RESOURCES = ("rss", "fds", "threads")


def tolerances(clients):
    """{resource: (abs_tol, rel_tol)} for a run with `clients` concurrent clients."""
    return {
        "rss": (16 * 1024, 0.10),  # KiB
        "fds": (max(16, 3 * clients), 0.10),
        "threads": (max(8, 2 * clients), 0.10),
    }


def read_sample(pid):
    """{"rss", "fds", "threads"} of pid, or None if it is gone (or a zombie)."""
    try:
        rss = threads = None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return None
    if rss is None or threads is None:
        return None
    return {"rss": rss, "fds": fds, "threads": threads}


class Series:
    """The samples of one incarnation of one process."""

    def __init__(self, name, incarnation, pid):
        self.name = name
        self.incarnation = incarnation
        self.pid = pid
        self.times = []
        self.values = {r: [] for r in RESOURCES}

    def add(self, t, sample):
        self.times.append(t)
        for r in RESOURCES:
            self.values[r].append(sample[r])


def judge(values, abs_tol, rel_tol):
    """("ok" | "grows" | "short", middle-third max, last-third max) of one series."""
    n = len(values)
    if n < MIN_SAMPLES:
        return "short", None, None
    third = n // 3
    middle = max(values[third:2 * third])
    last = max(values[2 * third:])
    limit = middle + max(abs_tol, rel_tol * middle)
    grows = last > limit and values[-1] > limit
    return ("grows" if grows else "ok"), middle, last


class Sampler(threading.Thread):
    """Samples `procs` (objects with .name and .snapshot() -> (pid, incarnation)) every
    interval_s until stop() is called; stop() joins it."""

    def __init__(self, procs, interval_s, t0):
        super().__init__(name="soak-sampler", daemon=True)
        self._procs = procs
        self._interval = interval_s
        self._t0 = t0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._series = {}  # (name, incarnation) -> Series; GUARDED_BY(_lock)

    def run(self):
        while not self._stop_event.is_set():
            now = time.monotonic() - self._t0
            for proc in self._procs:
                pid, inc = proc.snapshot()
                if pid is None:
                    continue
                sample = read_sample(pid)
                if sample is None:
                    continue
                with self._lock:
                    s = self._series.setdefault((proc.name, inc), Series(proc.name, inc, pid))
                    s.add(now, sample)
            self._stop_event.wait(self._interval)

    def stop(self):
        self._stop_event.set()
        self.join()

    def series(self):
        with self._lock:
            return sorted(self._series.values(), key=lambda s: (s.name, s.incarnation))


def evaluate(series_list, clients):
    """One report row per series: start / max / end of each resource and its verdict."""
    tol = tolerances(clients)
    rows = []
    for s in series_list:
        row = {"process": s.name, "incarnation": s.incarnation, "pid": s.pid,
               "samples": len(s.times),
               "from_s": round(s.times[0], 1) if s.times else None,
               "to_s": round(s.times[-1], 1) if s.times else None}
        for r in RESOURCES:
            v = s.values[r]
            verdict, middle, last = judge(v, *tol[r])
            row[r] = {"start": v[0], "max": max(v), "end": v[-1], "middle_max": middle,
                      "last_max": last, "verdict": verdict}
        rows.append(row)
    return rows
