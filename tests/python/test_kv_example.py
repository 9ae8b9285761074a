"""Runs python/examples/kv_cache_transfer.py (two processes) over tcp and shm."""

import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python",
                       "examples", "kv_cache_transfer.py")


@pytest.mark.parametrize("protocol", ["tcp", "shm"])
def test_kv_cache_example(protocol):
    out = subprocess.run([sys.executable, EXAMPLE, "--protocol", protocol],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kv_cache_transfer OK: 8 blocks in 4 runs" in out.stdout
