"""`ferry master` as a user runs it: Mooncake's flag names in both spellings, clear errors
for bad and unknown flags, its HTTP pages, the metadata server, and a clean SIGTERM.

    FERRY_BIN=build/bin/ferry python3 -m pytest -q tests/store/ferry_master_cli_test.py
"""

import os
import json
import re
import signal
import subprocess
import urllib.request

import pytest

FERRY = os.environ.get("FERRY_BIN", "build/bin/ferry")


def run(*args, timeout=10):
    return subprocess.run([FERRY, "master", *args], capture_output=True, text=True,
                          timeout=timeout)


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.status, r.read().decode()


@pytest.mark.parametrize("args, message", [
    (["--bogus_flag=1"], "--bogus_flag"),
    (["--default_kv_lease_ttl=5x"], "unknown unit"),
    (["--default_kv_lease_ttl", "-5"], "default_kv_lease_ttl"),
    (["--eviction_ratio", "0"], "--eviction_ratio"),
    (["--eviction_high_watermark_ratio=1.5"], "--eviction_high_watermark_ratio"),
    (["--rpc_port=70000"], "0..65535"),
    (["--client_ttl=0"], "--client_ttl"),
    (["--put_start_discard_timeout_sec=60", "--put_start_release_timeout_sec=30"],
     "put_start_release_timeout_sec"),
    (["--snapshot_every_records=0"], "--snapshot_every_records"),
    (["--data_dir=/proc/ferry-no-such-dir"], "/proc/ferry-no-such-dir"),
])
def test_bad_flags_are_clear_errors(args, message):
    p = run(*args)
    assert p.returncode != 0
    assert message in p.stdout + p.stderr


def test_corrupt_data_dir_is_a_clear_error_naming_the_file(tmp_path):
    (tmp_path / "wal.00000000000000000001").write_bytes(b"FERRYWAL\x01\0\0\0" + b"x" * 40 +
                                                        b"\0" * 8 + b"more")
    p = run("--port", "0", "--metrics_port", "0", "--data_dir", str(tmp_path))
    assert p.returncode == 1
    assert "DATA_LOSS" in p.stderr and "wal.00000000000000000001 at offset 12" in p.stderr, \
        p.stderr


def test_serves_http_pages_and_metadata_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [FERRY, "master", "--port", "0", "--metrics_port=0", "--rpc_address", "127.0.0.1",
         "--default_kv_lease_ttl", "5s", "--client_ttl=3", "--allow_evict_soft_pinned_objects=false",
         "--enable_http_metadata_server", "--http_metadata_server_port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Log lines (the no-secret warning) may come first.
        m = None
        for _ in range(20):
            line = proc.stdout.readline()
            m = m or re.search(r"listening on 127\.0\.0\.1:(\d+) \(metrics port (\d+), "
                          r"metadata http://127\.0\.0\.1:(\d+)/metadata\)", line)
            if m or not line:
                break
        assert m, line
        metrics_port, md_port = int(m.group(2)), int(m.group(3))
        status, body = get(metrics_port, "/health")
        assert status == 200 and json.loads(body)["role"] == "leader", body
        status, body = get(metrics_port, "/metrics")
        assert status == 200 and "ferry_store_keys 0" in body
        assert get(metrics_port, "/get_all_segments") == (200, "")
        req = urllib.request.Request("http://127.0.0.1:%d/metadata?key=k" % md_port,
                                     data=b"v", method="PUT")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        assert get(md_port, "/metadata?key=k") == (200, "v")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
