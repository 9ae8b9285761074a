"""mooncake.store (the drop-in) against a real `ferry master`: return values, argument
order and keyword names as Mooncake's pybind module."""

import ctypes
import itertools

import numpy as np
import pytest

import ferry.store
from mooncake.engine import TransferEngine
from mooncake.store import (BufferHandle, MooncakeDistributedStore, ReplicaStatus,
                            ReplicateConfig, SoftPinAction)

pytestmark = pytest.mark.skipif(not ferry.store.HAS_STORE,
                                reason="the extension was built without the store client")

OK, INVALID_PARAMS, NOT_FOUND, HAS_LEASE = 0, -600, -704, -706
_ids = itertools.count()


def key(name):
    return f"mc-{name}-{next(_ids)}"


def data(n, seed=3):
    return np.random.default_rng(seed + n).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def member(store_master):
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 160 << 20, 4 << 20, "tcp", "",
                   store_master.address) == 0
    yield s
    assert s.close() == 0


@pytest.fixture(scope="module")
def store(store_master, member):
    s = MooncakeDistributedStore()
    assert s.setup({"local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
                    "global_segment_size": "16MB", "local_buffer_size": 16 << 20,
                    "protocol": "tcp", "master_server_addr": store_master.address}) == 0
    yield s
    s.close()


@pytest.fixture
def registered(store):
    """Two registered 4 MiB numpy buffers (src with random bytes, dst zeroed)."""
    src = np.frombuffer(data(4 << 20), dtype=np.uint8).copy()
    dst = np.zeros(4 << 20, dtype=np.uint8)
    assert store.register_buffer(src.ctypes.data, src.nbytes) == 0
    assert store.register_buffer(dst.ctypes.data, dst.nbytes) == 0
    yield src, dst
    assert store.unregister_buffer(src.ctypes.data) == 0
    assert store.unregister_buffer(dst.ctypes.data) == 0


def test_before_setup_and_after_close(store_master):
    s = MooncakeDistributedStore()
    assert s.health_check() == 1
    assert s.put("k", b"v") == INVALID_PARAMS and s.get("k") == b""
    assert s.get_buffer("k") is None and s.batch_is_exist(["a", "b"]) == [INVALID_PARAMS] * 2
    assert s.get_hostname() == "" and s.close() == 0
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "", "127.0.0.1:1") == -900
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", "12XB", 0, "tcp", "",
                   store_master.address) == INVALID_PARAMS
    assert s.setup({"metadata_server": "P2PHANDSHAKE"}) == INVALID_PARAMS
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 1 << 20, "tcp", "",
                   store_master.address) == 0
    assert s.health_check() == 0
    assert s.close() == 0 and s.health_check() == 1 and s.is_exist("k") == INVALID_PARAMS


def test_hostname_and_engine_given(store_master):
    engine = TransferEngine()
    assert engine.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "") == 0
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 1 << 20, 1 << 20, "tcp", "",
                   store_master.address, engine=engine) == 0
    assert s.get_hostname() == engine.get_local_session_id()
    k = key("eng")
    assert s.put(k, b"through a borrowed engine") == 0
    assert s.get(k) == b"through a borrowed engine"
    assert s.remove(k, force=True) == 0
    assert s.close() == 0
    engine.get_engine().close()


@pytest.mark.parametrize("size", [1, 4097, 1 << 20, 64 << 20])
def test_put_get_round_trip(store, size):
    k, v = key("rt"), data(size)
    assert store.put(k, v) == 0
    assert store.get_size(k) == size
    assert store.get(k) == v
    h = store.get_buffer(k)
    assert isinstance(h, BufferHandle) and h.size() == len(h) == size
    assert np.array(h, copy=False).tobytes() == v
    assert store.remove(k, force=True) == 0


def test_first_writer_wins_upsert_and_parts(store):
    k = key("fww")
    assert store.put(key=k, value=b"first") == 0
    assert store.put(k, b"second") == OK  # the first writer wins, quietly (as the reference)
    assert store.get(k) == b"first"
    assert store.upsert(k, b"second") == 0 and store.get(k) == b"second"
    k2 = key("parts")
    assert store.put_parts(k2, b"ab", memoryview(b"cd"), bytearray(b"e")) == 0
    assert store.get(k2) == b"abcde"
    assert store.upsert_parts(k2, b"x", b"yz", config=ReplicateConfig()) == 0
    assert store.get(k2) == b"xyz"
    assert store.batch_remove([k, k2], force=True) == [0, 0]


def test_remove_refused_while_leased(store):
    k = key("lease")
    assert store.put(k, b"v") == 0
    assert store.get(k) == b"v"
    assert store.remove(k) == HAS_LEASE
    assert store.remove(k, force=True) == 0
    assert store.remove(k) == NOT_FOUND


def test_missing_keys(store):
    k = key("missing")
    assert store.get(k) == b"" and store.get_buffer(k) is None
    assert store.is_exist(k) == 0 and store.get_size(k) == NOT_FOUND
    assert store.get_into(k, 0, 0) == NOT_FOUND
    assert store.get_replica_desc(k) == [] and store.batch_get_replica_desc([k]) == {}
    assert store.get_batch([k]) == [b""] and store.batch_get_buffer([k]) == [None]


@pytest.mark.parametrize("bad", ["", "k" * (1 << 20)])
def test_empty_and_huge_keys(store, bad):
    assert store.put(bad, b"x") == INVALID_PARAMS
    assert store.get(bad) == b"" and store.is_exist(bad) < 0
    assert store.batch_is_exist([bad, key("ok")]) == [INVALID_PARAMS, 0]


def test_batches(store):
    keys = [key("b") for _ in range(4)]
    values = [data(i * 333 + 1, i) for i in range(4)]
    assert store.put_batch(keys, values) == 0
    assert store.put_batch(keys[:1] + [key("new")], [b"x", b"y"]) == OK
    assert store.get(keys[0]) == values[0]
    assert store.put_batch(keys, values[:1]) == INVALID_PARAMS
    assert store.get_batch(keys) == values
    assert [bytes(b) for b in store.batch_get_buffer(keys)] == values
    assert store.batch_is_exist(keys + [key("no")]) == [1, 1, 1, 1, 0]
    assert store.upsert_batch(keys, [b"u"] * 4) == 0
    assert store.get_batch(keys) == [b"u"] * 4
    assert store.batch_remove(keys) == [HAS_LEASE] * 4
    assert store.batch_remove(keys, force=True) == [0] * 4


def test_zero_copy_forms(store, registered):
    src, dst = registered
    sp, dp = src.ctypes.data, dst.ctypes.data
    k = key("zc")
    assert store.put_from(k, sp, 3 << 20) == 0
    assert store.get_into(k, dp, dst.nbytes) == 3 << 20
    assert np.array_equal(dst[:3 << 20], src[:3 << 20])
    assert store.put_from(k, sp, 10) == OK  # kept: the first writer wins
    assert store.upsert_from(k, sp + 5, 10, ReplicateConfig()) == 0
    assert store.get_into(k, dp, 5) == -10  # BUFFER_OVERFLOW
    assert store.get_into(k, dp, 10) == 10 and bytes(dst[:10]) == bytes(src[5:15])
    assert store.put_from(key("unreg"), 4096, 16) == INVALID_PARAMS
    ks = [key("bpf") for _ in range(3)]
    assert store.batch_put_from(ks, [sp, sp + 100, sp + 200], [100, 100, 50]) == [0, 0, 0]
    assert store.batch_put_from(ks, [sp], [1, 2]) == [INVALID_PARAMS] * 3
    assert store.batch_upsert_from(ks[:1], [sp + 1], [7]) == [0]
    dst[:] = 0
    assert store.batch_get_into(ks, [dp, dp + 1000, dp + 2000], [100, 100, 100]) == [7, 100, 50]
    assert bytes(dst[:7]) == bytes(src[1:8])
    assert bytes(dst[1000:1100]) == bytes(src[100:200])
    km = [key("multi") for _ in range(2)]
    assert store.batch_put_from_multi_buffers(km, [[sp, sp + 64], [sp + 128]],
                                              [[16, 16], [8]], ReplicateConfig()) == [0, 0]
    dst[:] = 0
    got = store.batch_get_into_multi_buffers(km, [[dp, dp + 100], [dp + 200]],
                                             [[10, 22], [8]], True)
    assert got == [32, 8]
    assert bytes(dst[:10]) + bytes(dst[100:122]) == bytes(src[:16]) + bytes(src[64:80])
    assert bytes(dst[200:208]) == bytes(src[128:136])
    assert store.batch_remove([k] + ks + km, force=True) == [0] * 6


def test_get_into_ranges(store, registered):
    src, dst = registered
    sp, dp = src.ctypes.data, dst.ctypes.data
    k1, k2 = key("r1"), key("r2")
    assert store.put_from(k1, sp, 40) == 0 and store.put_from(k2, sp + 40, 40) == 0
    dst[:] = 0
    res = store.get_into_ranges([dp, dp + 64], [[k1, k2], [k2, k1]],
                                [[[0, 20], [8]], [[4], [16]]], [[[1, 30], [2]], [[0], [10]]],
                                [[[4, 3], [5]], [[6], [4]]])
    assert res == [[[4, 3], [5]], [[6], [4]]]
    s = bytes(src[:80])
    assert bytes(dst[0:4]) == s[1:5] and bytes(dst[20:23]) == s[30:33]
    assert bytes(dst[8:13]) == s[42:47]
    assert bytes(dst[68:74]) == s[40:46] and bytes(dst[80:84]) == s[10:14]
    bad = store.get_into_ranges([dp], [[k1, key("none")]], [[[0], [0]]], [[[39], [0]]],
                                [[[2], [1]]])
    assert bad == [[[INVALID_PARAMS], [NOT_FOUND]]]  # source overflow; missing key
    assert store.get_into_ranges([dp], [[k1]], [[[(4 << 20) - 1]]], [[[0]]], [[[2]]]) == \
        [[[INVALID_PARAMS]]]  # destination overflow
    assert store.batch_remove([k1, k2], force=True) == [0, 0]


def test_replicate_config_and_descriptors(store, member):
    cfg = ReplicateConfig()
    assert cfg.replica_num == 1 and cfg.soft_pin_action == SoftPinAction.PRESERVE
    cfg.replica_num = 2
    cfg.soft_pin_action = SoftPinAction.ENABLE
    cfg.soft_pin_ttl_ms = 60000
    cfg.with_hard_pin = False
    cfg.group_ids = ["g"]
    assert "replica_num=2" in str(cfg)
    with pytest.raises(AttributeError):
        cfg.replica_number = 3
    k = key("desc")
    assert store.put(k, data(5000), cfg) == 0
    descs = store.get_replica_desc(k)
    assert len(descs) == 2
    for d in descs:
        assert d.is_memory_replica() and not d.is_disk_replica()
        assert not d.is_local_disk_replica() and d.status == ReplicaStatus.COMPLETE
        bd = d.get_memory_descriptor().buffer_descriptor
        assert bd.size == 5000 and bd.buffer_address != 0
        with pytest.raises(RuntimeError):
            d.get_disk_descriptor()
    assert {d.get_memory_descriptor().buffer_descriptor.transport_endpoint for d in descs} == \
        {store.get_hostname(), member.get_hostname()}
    one = ReplicateConfig()
    one.preferred_segment = member.get_hostname()
    k2 = key("pref")
    assert store.put(k2, b"p", one) == 0
    got = store.batch_get_replica_desc([k, k2])
    assert set(got) == {k, k2} and len(got[k]) == 2
    assert got[k2][0].get_memory_descriptor().buffer_descriptor.transport_endpoint == \
        member.get_hostname()
    assert store.batch_remove([k, k2], force=True) == [0, 0]


def test_remove_by_regex_and_all(store):
    p = key("rx")
    assert store.put_batch([f"{p}-{i}" for i in range(3)], [b"v"] * 3) == 0
    assert store.remove_by_regex(f"{p}-.*") == 3
    assert store.remove_by_regex(regex_pattern=f"{p}-.*", force=True) == 0
    assert store.put(f"{p}-x", b"v") == 0
    assert store.remove_all(force=True) >= 1
    assert store.is_exist(f"{p}-x") == 0


def test_wrong_types_raise_type_error(store):
    calls = [lambda: store.put(1, b"v"), lambda: store.put("k", "str value"),
             lambda: store.get(None), lambda: store.put_from("k", "addr", 1),
             lambda: store.batch_get_into(["k"], [1.5], [1]),
             lambda: store.register_buffer(None, 1), lambda: store.get_batch("abc"),
             lambda: store.put("k", b"v", {"replica_num": 1}),
             lambda: store.remove_by_regex(None)]
    for call in calls:
        with pytest.raises(TypeError):
            call()
    assert ctypes.sizeof(ctypes.c_void_p) == 8
