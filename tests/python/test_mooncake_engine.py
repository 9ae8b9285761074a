"""mooncake.engine.TransferEngine (the drop-in) against a target process, tcp and shm."""

import ctypes
import time

import numpy as np
import pytest

import ferry

from conftest import Peer, sha
from mooncake.engine import TransferEngine, TransferNotify, TransferOpcode


@pytest.fixture(scope="module")
def peer(transport):
    p = Peer("mooncake", transport)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def engine(transport):
    e = TransferEngine()
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", transport, "") == 0
    yield e
    e.get_engine().close()


@pytest.fixture
def local(engine):
    """A registered 256 KiB numpy buffer."""
    buf = np.zeros(256 * 1024, dtype=np.uint8)
    assert engine.register_memory(buf.ctypes.data, buf.nbytes) == 0
    yield buf
    assert engine.unregister_memory(buf.ctypes.data) == 0


def test_opcode_enum():
    assert int(TransferOpcode.Read) == 0 and int(TransferOpcode.Write) == 1
    assert TransferOpcode.READ == TransferOpcode.Read


def test_init_and_port(engine):
    assert engine.get_rpc_port() > 0
    assert engine.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == -1  # twice


def test_initialize_variants():
    e = TransferEngine()
    assert e.initialize_ext("127.0.0.1:0", "P2PHANDSHAKE", "rdma", "mlx5_0", "p2p") == 0
    e.get_engine().close()
    assert TransferEngine().initialize("127.0.0.1", "P2PHANDSHAKE", "nvlink", "") == -1
    # No metadata server listens on port 1: bare host:port means etcd, then http://.
    assert TransferEngine().initialize("127.0.0.1", "127.0.0.1:1", "tcp", "") < 0
    assert TransferEngine().initialize("127.0.0.1", "http://127.0.0.1:1/m", "tcp", "") < 0
    assert TransferEngine().initialize("127.0.0.1", "redis://127.0.0.1:1", "tcp", "") < 0
    assert TransferEngine().register_memory(1, 1) == -1  # not initialized


def test_sync_write_read(engine, peer, local):
    local[:4096] = 0x5A
    assert engine.transfer_sync_write(peer.name, local.ctypes.data, peer.addr + 4096,
                                      4096) == 0
    assert peer.digest(4096, 4096) == sha(local[:4096])
    assert engine.transfer_sync_read(peer.name, local.ctypes.data, peer.addr, 8192) == 0
    assert np.array_equal(local[:4096], peer.pattern[:4096])
    assert engine.transfer_sync(peer.name, local.ctypes.data, peer.addr + 16384, 100,
                                TransferOpcode.Write) == 0


def test_batch_sync(engine, peer, local):
    local[:] = np.arange(local.size, dtype=np.uint8)
    base = local.ctypes.data
    addrs = [base, base + 10000, base + 50000]
    peers = [peer.addr + 200_000, peer.addr + 220_000, peer.addr + 260_000]
    lens = [1000, 2000, 3000]
    assert engine.batch_transfer_sync_write(peer.name, addrs, peers, lens) == 0
    for a, p, n in zip(addrs, peers, lens):
        assert peer.digest(p - peer.addr, n) == sha(local[a - base:a - base + n])
    local[:] = 0
    assert engine.batch_transfer_sync_read(peer.name, addrs, peers, lens) == 0
    assert engine.batch_transfer_sync_read(peer.name, addrs, peers, [1, 2]) == -1


def test_batch_async_and_status(engine, peer, local):
    base = local.ctypes.data
    local[:1024] = 7
    b1 = engine.batch_transfer_async_write(peer.name, [base], [peer.addr + 300_000], [1024])
    b2 = engine.batch_transfer_async_read(peer.name, [base + 4096], [peer.addr], [1024])
    assert b1 > 0 and b2 > 0
    assert engine.get_batch_transfer_status([b1, b2]) == 0
    assert np.array_equal(local[4096:5120], peer.pattern[:1024])
    assert peer.digest(300_000, 1024) == sha(local[:1024])
    assert engine.get_batch_transfer_status([b1]) == -1  # already freed


def test_submit_and_check(engine, peer, local):
    bid = engine.transfer_submit_write(peer.name, local.ctypes.data, peer.addr, 65536)
    assert bid > 0
    deadline = time.monotonic() + 10
    while (st := engine.transfer_check_status(bid)) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert st == 1
    assert engine.transfer_check_status(bid) == -1  # freed after it ended


def test_managed_buffer(engine, peer):
    addr = engine.allocate_managed_buffer(1 << 16)
    assert addr != 0 and addr % 4096 == 0
    assert engine.write_bytes_to_buffer(addr, b"hello ferry", 11) == 0
    assert engine.read_bytes_from_buffer(addr, 11) == b"hello ferry"
    assert engine.transfer_sync_write(peer.name, addr, peer.addr + 700_000, 11) == 0
    assert peer.digest(700_000, 11) == sha(b"hello ferry")
    assert engine.write_bytes_to_buffer(addr + (1 << 16) - 2, b"abc", 3) == -1
    assert engine.read_bytes_from_buffer(0x1000, 8) == b""
    assert engine.free_managed_buffer(addr, 1 << 16) == 0
    assert engine.free_managed_buffer(addr, 1 << 16) == -1
    assert engine.allocate_managed_buffer(0) == 0


def test_batch_register(engine):
    bufs = [np.zeros(4096, dtype=np.uint8) for _ in range(3)]
    addrs = [b.ctypes.data for b in bufs]
    assert engine.batch_register_memory(addrs, [4096] * 3) == 0
    assert engine.batch_register_memory(addrs[:1], [4096]) == -7  # ERR_ADDRESS_OVERLAPPED
    assert engine.batch_unregister_memory(addrs) == 0
    assert engine.batch_unregister_memory(addrs) == -3  # ERR_ADDRESS_NOT_REGISTERED


def test_segment_queries(engine, peer):
    assert engine.get_first_buffer_address(peer.name) == peer.addr
    assert engine.send_probe(peer.name) == 0
    assert engine.send_probe("127.0.0.1:1") != 0
    assert engine.get_first_buffer_address("127.0.0.1:1") == 0


def test_notify(engine, peer, local):
    n = TransferNotify("req-1", "kv done")
    assert engine.transfer_sync(peer.name, local.ctypes.data, peer.addr + 800_000, 64,
                                TransferOpcode.Write, n) == 0
    assert peer.notifies(1) == [["req-1", "kv done"]]
    assert engine.get_notifies() == []


def test_failures_are_values(engine, peer, local):
    a = local.ctypes.data
    assert engine.transfer_sync_write(peer.name, a, peer.addr + peer.size, 16) < 0
    assert engine.transfer_sync_write("127.0.0.1:1", a, peer.addr, 16) < 0
    assert engine.transfer_sync_write(peer.name, 0x1000, peer.addr, 16) < 0  # unregistered
    unreg = np.zeros(16, dtype=np.uint8)
    assert engine.transfer_sync_write(peer.name, unreg.ctypes.data, peer.addr, 16) < 0
    assert engine.batch_transfer_async_write(peer.name, [a], [0x10], [16]) == 0
    # The reference's failed batch id is 0 (its callers test `batch_id != 0`).
    assert engine.transfer_submit_write("127.0.0.1:1", a, peer.addr, 16) == 0
    assert engine.transfer_check_status(987654) == -1
    assert engine.unregister_memory(0x1234) < 0
    assert engine.register_memory(0, 16) < 0


def test_failure_values_match_the_reference(engine, peer, local):
    """Each method's failure value as Mooncake's transfer_engine_py.cpp returns it."""
    a = local.ctypes.data
    # batch ids: 0 is the failed batch (unregistered source, unknown peer, bad lists)
    assert engine.transfer_submit_write(peer.name, 0x1000, peer.addr, 16) == 0
    assert engine.batch_transfer_async_read("127.0.0.1:1", [a], [peer.addr], [16]) == 0
    assert engine.batch_transfer_async(peer.name, [a, a], [peer.addr], [16],
                                       TransferOpcode.Write) == 0
    # a write past the peer's memory is refused at submit or reported by the status
    bid = engine.transfer_submit_write(peer.name, a, peer.addr + peer.size, 16)
    if bid != 0:
        deadline = time.monotonic() + 10
        while (st := engine.transfer_check_status(bid)) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert st == -1
    # sync calls: -1
    assert engine.transfer_sync_read("127.0.0.1:1", a, peer.addr, 16) == -1
    assert engine.batch_transfer_sync_write(peer.name, [a], [peer.addr], [16, 16]) == -1
    assert engine.get_batch_transfer_status([123456789]) == -1
    # registration: Mooncake's error.h codes
    assert engine.register_memory(a, 4096) == -7  # ERR_ADDRESS_OVERLAPPED
    assert engine.unregister_memory(a + 8) == -3  # ERR_ADDRESS_NOT_REGISTERED
    assert engine.batch_unregister_memory([a + 8]) == -3
    # an engine that was never initialized
    idle = TransferEngine()
    assert idle.transfer_submit_write(peer.name, a, peer.addr, 16) == 0
    assert idle.batch_transfer_async_write(peer.name, [a], [peer.addr], [16]) == 0
    assert idle.transfer_sync_write(peer.name, a, peer.addr, 16) == -1
    assert idle.register_memory(a, 16) == -1
    assert idle.allocate_managed_buffer(4096) == 0
    assert idle.get_rpc_port() == -1
    assert idle.get_notifies() == []


def test_initialize_ucx_and_device_name():
    # "ucx" is an engine transport only in a UCX build; device_name reaches the engine.
    e = TransferEngine()
    expected = 0 if ferry.HAVE_UCX else -1
    assert e.initialize("127.0.0.1", "P2PHANDSHAKE", "ucx", "lo") == expected
    if expected == 0:
        e.get_engine().close()
    t = ferry.TransferEngine("127.0.0.1:0", transport="tcp", device_name="lo")
    assert t.local_name.startswith("127.0.0.1:")
    t.close()


@pytest.mark.skipif(not ferry.HAVE_UCX, reason="a build without UCX")
def test_managed_buffer_of_ucx_reaches_a_ucx_peer():
    # Under ucx the managed buffer is UCX's own memory; a second engine writes into it
    # over ucx (UCX shared memory, which needs error mode none in UCX 1.13).
    params = "ucx_tls=sm,ucx_err_mode=none"
    target = ferry.TransferEngine("127.0.0.1:0", transport="ucx", transport_params=params)
    src = ferry.TransferEngine("127.0.0.1:0", transport="ucx", transport_params=params)
    try:
        addr = target.allocate_managed(1 << 20)
        assert addr % 4096 == 0
        data = np.frombuffer(np.random.default_rng(5).bytes(1 << 20), dtype=np.uint8).copy()
        src.register(data)
        seg = src.open_segment(target.local_name)
        src.write(seg, data, addr)
        assert ctypes.string_at(addr, data.nbytes) == data.tobytes()
        assert src.counters()["transport_fallbacks"] == 0
        target.free_managed(addr)
        with pytest.raises(ferry.NotFoundError):
            target.free_managed(addr)
    finally:
        src.close()
        target.close()
