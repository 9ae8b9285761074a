"""The soak's verdict: request statistics, chaos and SIGTERM tables, resource table, the
pass criteria, the human report and the JSON object.

Pass criteria (the issue's): no wrong answer, no hung request, every resource series
levels off (soak_resources.judge), every SIGTERM exit within the limit. The harness adds
three of its own, without which the others cannot be trusted: every restart came back
healthy, no client thread outlived its deadline, and no process of the run was left
behind.
"""

import array
import bisect
import collections
import json
import os
import re
import threading

from soak_requests import OUTCOMES


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def chaos_windows(actions):
    """Sorted, merged [(start, end)] of the chaos actions, each from its signal to the
    deployment's recovery. An action after which the deployment did not become whole
    lasts until a later action's recovery check passed (or for ever): until then the
    deployment is not known to be whole, so nothing in between is quiet."""
    spans = []
    for i, a in enumerate(actions):
        end = a.get("recovered_t")
        if end is None:
            later = [b["recovered_t"] for b in actions[i + 1:] if b.get("recovered_t")]
            end = later[0] if later else float("inf")
        spans.append((a["t"], end))
    spans.sort()
    merged = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


class RequestLog:
    """Every request's outcome, kept compactly enough for an hour at hundreds of requests
    a second: times and outcome codes in arrays, counters, and the full record (also
    written to a JSON-lines file) only of requests that were not correct (the first
    MAX_KEPT of them). Thread-safe."""

    MAX_KEPT = 20000

    def __init__(self, path):
        self._lock = threading.Lock()
        self._t_start = array.array("d")  # GUARDED_BY(_lock)
        self._t_end = array.array("d")  # GUARDED_BY(_lock)
        self._code = array.array("b")  # GUARDED_BY(_lock): index into OUTCOMES
        self._latency = array.array("d")  # GUARDED_BY(_lock): of correct answers
        self._kinds = {o: collections.Counter() for o in OUTCOMES}  # GUARDED_BY(_lock)
        self._per_spec = collections.defaultdict(collections.Counter)  # GUARDED_BY(_lock)
        self._kept = []  # GUARDED_BY(_lock)
        self._first = {}  # GUARDED_BY(_lock): (outcome, kind) -> record
        self._messages = collections.Counter()  # GUARDED_BY(_lock): "kind: detail"
        self._file = open(path, "w")  # GUARDED_BY(_lock)

    def add(self, rec):
        with self._lock:
            self._t_start.append(rec["t_start"])
            self._t_end.append(rec["t_end"])
            self._code.append(OUTCOMES.index(rec["outcome"]))
            self._per_spec[rec["spec"]][rec["outcome"]] += 1
            if rec["outcome"] == "correct":
                self._latency.append(rec["latency_s"])
                return
            self._kinds[rec["outcome"]][rec["kind"]] += 1
            self._messages["%s %s: %s" % (rec["outcome"], rec["kind"],
                                          _normalise(rec["detail"])[:100])] += 1
            self._first.setdefault((rec["outcome"], rec["kind"]), rec)
            if len(self._kept) < self.MAX_KEPT:
                self._kept.append(rec)
                self._file.write(json.dumps(rec) + "\n")
                self._file.flush()

    def counts(self):
        with self._lock:
            codes = self._code.tobytes()
        return {o: codes.count(bytes([i])) for i, o in enumerate(OUTCOMES)}

    def failed(self, outcome):
        with self._lock:
            return [r for r in self._kept if r["outcome"] == outcome]

    def stats(self, actions, slow_s):
        with self._lock:
            t_start, t_end, codes = self._t_start, self._t_end, self._code.tobytes()
            lat = sorted(self._latency)
            kinds = {o: dict(c.most_common()) for o, c in self._kinds.items()}
            per_spec = {k: dict(v) for k, v in sorted(self._per_spec.items())}
            first = list(self._first.values())
            messages = self._messages.most_common(12)
            n = len(codes)
        counts = {o: codes.count(bytes([i])) for i, o in enumerate(OUTCOMES)}
        windows = chaos_windows(actions)
        starts = [w[0] for w in windows]
        quiet = collections.Counter()
        for i in range(n):
            j = bisect.bisect_right(starts, t_end[i]) - 1
            if j < 0 or windows[j][1] < t_start[i]:
                quiet[OUTCOMES[codes[i]]] += 1
        return {
            "total": n,
            **counts,
            "error_kinds": kinds["error"],
            "hung_kinds": kinds["hung"],
            "wrong_kinds": kinds["wrong"],
            "latency_ms": {
                "n": len(lat),
                "p50": _ms(percentile(lat, 50)),
                "p99": _ms(percentile(lat, 99)),
                "max": _ms(lat[-1] if lat else None),
            },
            "slow_correct": sum(1 for v in lat if v > slow_s),
            "slow_threshold_s": slow_s,
            "quiet": {o: quiet.get(o, 0) for o in OUTCOMES},
            "messages": messages,
            "per_spec": per_spec,
            "first_of_each_kind": [
                {k: r[k] for k in ("id", "spec", "outcome", "kind", "detail", "t_start",
                                   "t_end", "latency_s")} for r in first],
        }


def _ms(v):
    return None if v is None else round(v * 1000, 1)


def overlapping_actions(record, actions):
    """The actions whose window (chaos_windows, unmerged) the request overlaps."""
    out = []
    for i, a in enumerate(actions):
        end = chaos_windows(actions[i:])[0][1] if a.get("recovered_t") is None else \
            a["recovered_t"]
        if record["t_start"] <= end and record["t_end"] >= a["t"]:
            out.append("%s %s @%.1fs%s" % (a["action"], a["target"], a["t"],
                                          "" if a.get("recovered") else " (not recovered)"))
    return out


_IDS = ((re.compile(r"xfer-[0-9a-f-]+"), "xfer-ID"), (re.compile(r"soak-c\d+-\d+"), "REQ"),
        (re.compile(r"ferry-[0-9a-f]{8,}"), "ENGINE"),
        (re.compile(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b|\d+(\.\d+)?"), "N"))


def _normalise(msg):
    for pattern, repl in _IDS:
        msg = pattern.sub(repl, msg)
    return msg


def log_digest(log_paths, top=8):
    """{process: [(count, normalised line)]}: the WARN and ERROR lines of each log, with
    numbers and ids replaced by N, most frequent first."""
    out = {}
    for name, path in log_paths:
        c = collections.Counter()
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if "[warning]" in line or "[error]" in line or "[critical]" in line:
                        # "[date time] [level] [thread] message"
                        msg = line.split("] ", 3)[-1].strip()
                        c[_normalise(msg)[:160]] += 1
        except OSError:
            continue
        if c:
            out[name] = c.most_common(top)
    return out


def criteria(result, sigterm_limit_s):
    """The list of failed pass criteria (empty: pass)."""
    fails = []
    req = result["requests"]
    if req["wrong"] > 0:
        fails.append("wrong answers: %d (must be 0)" % req["wrong"])
    if req["hung"] > 0:
        fails.append("hung requests: %d (must be 0)" % req["hung"])
    for row in result["resources"]:
        for r in ("rss", "fds", "threads"):
            if row[r]["verdict"] == "grows":
                fails.append("%s#%d %s does not level off: middle-third max %s, last-third max %s"
                             % (row["process"], row["incarnation"], r, row[r]["middle_max"],
                                row[r]["last_max"]))
    for s in result["sigterm"]:
        if s["seconds"] is None or s["seconds"] > sigterm_limit_s:
            fails.append("%s SIGTERM (%s, t=%.1fs) took %s s (limit %.1f s)" %
                         (s["process"], s["when"], s["t"], "over %d" % s["gave_up_s"]
                          if s["seconds"] is None else "%.2f" % s["seconds"], sigterm_limit_s))
    for a in result["chaos"]["actions"]:
        if a.get("restart_ok") is False:
            fails.append("%s did not come back healthy after %s @%.1fs" %
                         (a["target"], a["action"], a["t"]))
    if result.get("stuck_clients"):
        fails.append("client threads outlived their deadline: %d (harness defect)" %
                     result["stuck_clients"])
    if result.get("harness_errors"):
        fails.append("client calls that raised: %d (harness defect)" % result["harness_errors"])
    if result.get("strays"):
        fails.append("processes left behind: %s" % result["strays"])
    return fails


def _table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    return "\n".join(lines)


def human(result):
    cfg, req = result["config"], result["requests"]
    out = []
    out.append("== requests: %d clients, %.0f s of load, %dP+%dD, chaos %s, deadline %.0f s ==" %
               (cfg["clients"], result["load_seconds"], cfg["prefill"], cfg["decode"],
                ",".join(cfg["actions"]) if cfg["chaos"] else "off", cfg["request_timeout"]))
    total = max(1, req["total"])
    out.append(_table(["outcome", "count", "share"],
                      [[o, req[o], "%.1f%%" % (100.0 * req[o] / total)] for o in OUTCOMES]))
    for o in ("error", "hung", "wrong"):
        k = req[o + "_kinds"]
        if k:
            out.append("%s kinds: %s" % (o, ", ".join("%s %d" % kv for kv in k.items())))
    lat = req["latency_ms"]
    out.append("latency of correct answers: p50 %s ms, p99 %s ms, max %s ms (n=%d); "
               "slower than %.0f s: %d" % (lat["p50"], lat["p99"], lat["max"], lat["n"],
                                          req["slow_threshold_s"], req["slow_correct"]))
    q = req["quiet"]
    out.append("quiet requests (no action running, deployment known whole): " +
               ", ".join("%s %d" % (o, q[o]) for o in OUTCOMES))
    for message, count in req["messages"]:
        out.append("  %6d  %s" % (count, message))
    for s in req["first_of_each_kind"]:
        out.append("  first %s/%s: %s %s t=%.1f-%.1fs: %s" %
                   (s["outcome"], s["kind"], s["id"], s["spec"], s["t_start"], s["t_end"],
                    s["detail"]))
    for h in result.get("hung_examples", []):
        out.append("  hung %s (%s) t=%.1f-%.1fs during: %s" %
                   (h["id"], h["kind"], h["t_start"], h["t_end"], "; ".join(h["during"]) or
                    "no chaos action"))

    ch = result["chaos"]
    out.append("")
    out.append("== chaos: %d actions (%s) ==" % (len(ch["actions"]), ", ".join(
        "%s %d" % kv for kv in sorted(ch["counts"].items())) or "none"))
    if ch["actions"]:
        rows = []
        for a in ch["actions"]:
            if a["action"] == "pause":
                detail = "stopped %.1fs" % a["paused_s"]
            elif a["action"] == "term":
                detail = "exit %s, restart after %.1fs" % (
                    "%.2fs rc=%s" % (a["exit_s"], a["rc"]) if a["exit_s"] is not None else
                    "NOT within %ds" % a["gave_up_s"], a["restart_delay_s"])
            else:
                detail = "restart after %.1fs" % a["restart_delay_s"]
            rec = "%.1fs" % a["recovery_s"] if a.get("recovered") else "NOT recovered"
            rows.append(["%.1f" % a["t"], a["target"], a["action"], detail, rec])
        out.append(_table(["t(s)", "target", "action", "detail", "all healthy after"], rows))

    out.append("")
    out.append("== SIGTERM exit times (limit %.1f s) ==" % cfg["sigterm_limit"])
    out.append(_table(["when", "process", "t(s)", "exit(s)", "rc"],
                      [[s["when"], s["process"], "%.1f" % s["t"],
                        "%.2f" % s["seconds"] if s["seconds"] is not None else
                        ">%d" % s["gave_up_s"], s["rc"]] for s in result["sigterm"]]))

    out.append("")
    out.append("== resources per incarnation (start / max / end; verdict: last-third max vs "
               "middle-third max, soak_resources.py) ==")
    rows = []
    for r in result["resources"]:
        def col(k, scale=1, unit=""):
            v = r[k]
            return "%s/%s/%s%s %s" % (v["start"] // scale, v["max"] // scale, v["end"] // scale,
                                      unit, v["verdict"])
        rows.append(["%s#%d" % (r["process"], r["incarnation"]), r["samples"],
                     "%s-%s" % (r["from_s"], r["to_s"]), col("rss", 1024, "MiB"), col("fds"),
                     col("threads")])
    out.append(_table(["process", "samples", "t(s)", "rss", "fds", "threads"], rows))

    if result["log_digest"]:
        out.append("")
        out.append("== warnings and errors in the logs (most frequent, numbers as N) ==")
        for name, lines in result["log_digest"].items():
            for line, count in lines:
                out.append("  %-9s %5d  %s" % (name, count, line))

    out.append("")
    if result["failures"]:
        out.append("== FAIL ==")
        out.extend("  - " + f for f in result["failures"])
    elif result["interrupted"]:
        out.append("== INTERRUPTED: no criterion failed in the part that ran ==")
    else:
        out.append("== PASS ==")
    if result.get("workdir"):
        out.append("logs: %s" % result["workdir"])
    return "\n".join(out)


def log_paths(procs):
    return [(p.name, p.log_path) for p in procs if os.path.exists(p.log_path)]
