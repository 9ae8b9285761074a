#!/usr/bin/env python3
"""The soak's level-off rule and its chaos-window bookkeeping: a leak fails, a series that
reaches its peak early passes, noise within the tolerance passes, a short series is not
judged; a request touched by a chaos action is never counted as "quiet".

    python3 tests/soak/soak_resources_test.py
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import soak_report  # noqa: E402
import soak_resources  # noqa: E402
from soak_resources import MIN_SAMPLES, judge  # noqa: E402


class JudgeTest(unittest.TestCase):
    def test_leak_does_not_level_off(self):
        leak = [100 + 2 * i for i in range(60)]  # +120 over the run, +40 per third
        self.assertEqual(judge(leak, 16, 0.10)[0], "grows")

    def test_warm_up_then_flat_levels_off(self):
        series = [10, 40, 70, 90, 98, 100] + [100] * 54
        self.assertEqual(judge(series, 16, 0.10), ("ok", 100, 100))

    def test_noise_within_tolerance_levels_off(self):
        series = [100 + (i * 7) % 13 for i in range(60)]  # 100..112, no trend
        self.assertEqual(judge(series, 16, 0.10)[0], "ok")

    def test_step_in_the_last_third_beyond_tolerance_fails(self):
        series = [100] * 40 + [100 + 30] * 20
        self.assertEqual(judge(series, 16, 0.10)[0], "grows")

    def test_burst_that_drains_by_the_end_levels_off(self):
        # The hour soak's prefill0#69: fds 28, a peak of 88 while decode and proxy
        # restarted twice each, back to 34 at the end.
        series = [30] * 40 + [88, 80, 60] + [34] * 17
        self.assertEqual(judge(series, 24, 0.10)[0], "ok")

    def test_leak_cut_off_by_a_kill_still_grows(self):
        series = [30] * 40 + [30 + 5 * i for i in range(20)]  # still climbing at the end
        self.assertEqual(judge(series, 24, 0.10)[0], "grows")

    def test_relative_tolerance_applies_to_large_values(self):
        series = [1000] * 40 + [1090] * 20  # +9 %, above the absolute 16
        self.assertEqual(judge(series, 16, 0.10)[0], "ok")

    def test_short_series_is_not_judged(self):
        self.assertEqual(judge(list(range(MIN_SAMPLES - 1)), 0, 0)[0], "short")

    def test_sampler_reads_a_real_process(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            t0 = time.monotonic()
            s = soak_resources.read_sample(child.pid)
            while s["rss"] < 2000 and time.monotonic() - t0 < 10:  # the interpreter starting
                time.sleep(0.05)
                s = soak_resources.read_sample(child.pid)
            self.assertGreater(s["rss"], 2000)
            self.assertGreaterEqual(s["fds"], 3)
            self.assertGreaterEqual(s["threads"], 1)
        finally:
            child.kill()
            child.wait()
        self.assertIsNone(soak_resources.read_sample(child.pid))


class ChaosWindowTest(unittest.TestCase):
    def test_requests_overlapping_an_action_are_not_quiet(self):
        actions = [{"t": 10.0, "done_t": 12.0, "recovered_t": 12.5},
                   {"t": 12.4, "done_t": 13.0, "recovered_t": 14.0},  # overlaps the first
                   {"t": 30.0, "done_t": 31.0, "recovered_t": None}]  # never recovered
        self.assertEqual(soak_report.chaos_windows(actions),
                         [(10.0, 14.0), (30.0, float("inf"))])
        with tempfile.TemporaryDirectory() as d:
            log = soak_report.RequestLog(os.path.join(d, "failed.jsonl"))
            spans = [(1, 2, "correct"), (9, 10, "error"), (13.9, 20, "hung"), (14.1, 15, "correct"),
                     (29, 29.5, "correct"), (95, 96, "hung"), (90, 92, "error")]
            for i, (s, e, o) in enumerate(spans):
                log.add({"id": "r%d" % i, "spec": "x", "client": 0, "outcome": o, "kind": "k",
                         "detail": "", "status": 0, "t_start": s, "t_end": e, "latency_s": e - s})
            st = log.stats(actions, slow_s=10)
        # quiet: (1, 2), (14.1, 15), (29, 29.5). (9, 10) touches the first window; after
        # the action at 30 the deployment never became whole, so (95, 96) is not quiet.
        self.assertEqual(st["quiet"], {"correct": 3, "error": 0, "wrong": 0, "hung": 0})
        self.assertEqual((st["correct"], st["error"], st["hung"]), (3, 2, 2))


if __name__ == "__main__":
    unittest.main(verbosity=2)
