"""ferry.TransferEngine against a target process, over tcp and shm, with numpy buffers."""

import numpy as np
import pytest

import ferry
from conftest import Peer, sha


@pytest.fixture(scope="module")
def peer(transport):
    p = Peer("ferry", transport)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def engine(transport):
    with ferry.TransferEngine("127.0.0.1:0", transport=transport) as e:
        yield e


def test_identity(engine):
    assert engine.local_name == f"127.0.0.1:{engine.rpc_port}"
    assert engine.rpc_port > 0


def test_read_whole_peer_buffer(engine, peer):
    local = np.zeros(peer.size, dtype=np.uint8)
    engine.read(peer.name, local, peer.addr)
    assert np.array_equal(local, peer.pattern)


def test_write_numpy_then_peer_sees_it(engine, peer):
    data = np.arange(4096, dtype=np.uint32)  # 16 KiB, unregistered buffer object
    engine.write(peer.name, data, peer.addr + 8192)
    assert peer.digest(8192, data.nbytes) == sha(data.tobytes())


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "raw"])
def test_register_buffer_kinds(engine, peer, kind):
    backing = bytearray(b"ferry-%d-" % len(kind) * 100)
    if kind == "bytearray":
        obj, length = backing, None
    elif kind == "memoryview":
        obj, length = memoryview(backing), None
    else:
        obj, length = np.frombuffer(backing, dtype=np.uint8).ctypes.data, len(backing)
    addr = engine.register(obj, length)
    try:
        off = 300_000
        engine.write(peer.name, addr, peer.addr + off, len(backing))
        assert peer.digest(off, len(backing)) == sha(backing)
    finally:
        engine.unregister(addr)


def test_submit_poll_wait_free(engine, peer):
    src = np.random.default_rng(3).integers(0, 256, 64 * 1024, dtype=np.uint8)
    engine.register(src)
    try:
        seg = engine.open_segment(peer.name)
        assert engine.open_segment(peer.name) == seg
        batch = engine.allocate_batch(4)
        reqs = [ferry.Request(ferry.WRITE, src.ctypes.data + i * 16384, seg,
                              peer.addr + 400_000 + i * 16384, 16384) for i in range(4)]
        engine.submit(batch, reqs, timeout=10)
        engine.wait(batch, timeout=10)
        status = engine.poll(batch)
        assert status.state == "done" and status.error is None
        assert status.bytes_done == src.nbytes
        assert engine.poll(batch, 3).state == "done"
        engine.free(batch)
        with pytest.raises(ferry.InvalidArgumentError):
            engine.poll(batch)
        assert peer.digest(400_000, src.nbytes) == sha(src)
    finally:
        engine.unregister(src)


def test_transfer_sync_mixed_ops(engine, peer):
    out = np.full(1000, 0xAB, dtype=np.uint8)
    back = np.zeros(1000, dtype=np.uint8)
    engine.transfer_sync([(ferry.WRITE, out, peer.name, peer.addr + 500_000),
                          (ferry.READ, back, peer.name, peer.addr)])
    assert np.array_equal(back, peer.pattern[:1000])
    assert peer.digest(500_000, 1000) == sha(out)


def test_notifications(engine, peer):
    engine.send_notification(peer.name, "hello")
    engine.write(peer.name, np.ones(16, dtype=np.uint8), peer.addr + 600_000, notify=b"done")
    got = peer.notifies(count=2)
    assert [m for _, m in got] == ["hello", "done"]
    assert all(sender == engine.local_name for sender, _ in got)


def test_counters_and_segment_buffers(engine, peer):
    before = engine.counters()
    engine.read(peer.name, np.zeros(100, dtype=np.uint8), peer.addr)
    after = engine.counters()
    assert after["bytes_read"] - before["bytes_read"] == 100
    (buf,) = engine.segment_buffers(peer.name, refresh=True)
    assert (buf.addr, buf.length, buf.remote) == (peer.addr, peer.size, True)


def test_probe(engine, peer):
    rtt = engine.probe(peer.name)
    assert 0 < rtt < 1.0
    with pytest.raises(ferry.NotFoundError):
        engine.probe(987654)  # no such segment id


def test_errors(engine, peer):
    small = np.zeros(64, dtype=np.uint8)
    with pytest.raises(ferry.InvalidArgumentError) as e:  # outside the peer's buffers
        engine.write(peer.name, small, peer.addr + peer.size - 8)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.message
    with pytest.raises(ferry.InvalidArgumentError):  # wrong local address
        engine.write(peer.name, 0x1000, peer.addr, 64)
    with pytest.raises(ferry.NotFoundError):
        engine.unregister(small)
    with pytest.raises(ferry.InvalidArgumentError):
        engine.register(np.zeros(10)[::2])  # not contiguous
    with pytest.raises(ferry.InvalidArgumentError):
        engine.register(b"read-only bytes")
    with pytest.raises(ferry.InvalidArgumentError):
        engine.register(small, length=65)
    with pytest.raises(ferry.FerryError):  # nobody listens on port 1
        engine.open_segment("127.0.0.1:1")
    with pytest.raises(ferry.FerryError):
        ferry.TransferEngine("127.0.0.1:0", transport="no-such-transport")
    addr = engine.register(small)
    with pytest.raises(ferry.InvalidArgumentError):  # overlap
        engine.register(small)
    engine.unregister(addr)


def test_closed_engine_raises():
    e = ferry.TransferEngine()
    e.close()
    e.close()
    with pytest.raises(ferry.FailedPreconditionError):
        e.open_segment("127.0.0.1:1")


def test_wait_sleeps_and_releases_the_gil(peer):
    """A slow transfer (fault transport, 300 ms delay): other Python threads keep running
    while wait() blocks, and the waiting costs far less CPU than wall time."""
    import threading
    import time
    with ferry.TransferEngine(transport="fault:tcp", transport_params="delay_ms=300") as e:
        data = np.ones(4096, dtype=np.uint8)
        e.open_segment(peer.name)
        batch = e.allocate_batch(1)
        ticks, stop = [0], threading.Event()

        def count():
            while not stop.is_set():
                ticks[0] += 1
                time.sleep(0.001)
        t = threading.Thread(target=count)
        t.start()
        wall, cpu = time.monotonic(), time.process_time()
        e.submit(batch, [(ferry.WRITE, data, peer.name, peer.addr + 900_000)])
        e.wait(batch, timeout=10)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        stop.set()
        t.join()
        e.free(batch)
        assert wall >= 0.25
        assert ticks[0] > 50          # the counter thread ran during wait()
        assert cpu < 0.5 * wall       # no core spun for the whole wait


def test_failed_batch_reports_the_status(peer):
    """Every slice dropped (fault transport): poll says failed with the C++ error, wait
    raises it, and the mooncake facade reports -1."""
    with ferry.TransferEngine(transport="fault:tcp", transport_params="drop=1") as e:
        data = np.ones(4096, dtype=np.uint8)
        batch = e.allocate_batch(1)
        e.submit(batch, [(ferry.WRITE, data, peer.name, peer.addr)], timeout=5)
        with pytest.raises(ferry.FerryError) as raised:
            e.wait(batch, timeout=10)
        st = e.poll(batch)
        assert st.state == "failed"
        assert isinstance(st.error, type(raised.value))
        assert st.error.code == raised.value.code and st.error.message
        e.free(batch)
