"""ferry.store.Store against a real `ferry master`: a member lending DRAM and a second store
(which lends a little too, so that two segments exist for replica_num=2)."""

import itertools

import numpy as np
import pytest

import ferry
import ferry.store
from ferry.store import ErrorCode, ReplicateConfig, StoreBatchError, StoreError

pytestmark = pytest.mark.skipif(not ferry.store.HAS_STORE,
                                reason="the extension was built without the store client")

_ids = itertools.count()


def key(name):
    """A key no other test uses."""
    return f"fs-{name}-{next(_ids)}"


def data(n, seed=1):
    return np.random.default_rng(seed + n).integers(0, 256, n, dtype=np.uint8).tobytes()


def code_of(excinfo):
    return excinfo.value.code


@pytest.fixture(scope="module")
def member(store_master):
    with ferry.store.Store(store_master.address, global_segment_size="160MiB",
                           local_buffer_size="4MiB") as s:
        yield s


@pytest.fixture(scope="module")
def store(store_master, member):
    with ferry.store.Store(store_master.address, global_segment_size="16MiB",
                           local_buffer_size="16MiB", rpc_timeout=5) as s:
        yield s


def test_parse_size():
    p = ferry.store.parse_size
    assert p(4096) == 4096 and p("4096") == 4096 and p("16MB") == 16 << 20
    assert p("4GiB") == 4 << 30 and p("1.5G") == 3 << 29 and p("2 kb") == 2048
    for bad in ("", "12XB", "-1", "1..2M"):
        with pytest.raises(ValueError):
            p(bad)
    with pytest.raises(TypeError):
        p(1.5)


def test_hostname_health_counters(store, member):
    assert ":" in store.hostname and store.hostname != member.hostname
    store.health_check()
    c = store.counters()
    assert {"puts", "gets", "bytes_put", "rpcs"} <= set(c)


@pytest.mark.parametrize("size", [1, 4095, 1 << 20, (16 << 20) + 3, 64 << 20])
def test_round_trip_byte_exact(store, size):
    k, v = key("rt"), data(size)
    store.put(k, v)
    assert store.get_size(k) == size
    got = store.get(k)
    assert len(got) == size and got == v
    buf = store.get_buffer(k)
    assert buf.size() == len(buf) == size and bytes(buf) == v
    assert memoryview(buf).nbytes == size and buf.ptr() != 0
    store.remove(k, force=True)


def test_first_writer_wins_and_upsert(store):
    k = key("fww")
    store.put(k, b"first")
    store.put(k, b"second")  # succeeds, keeps the first value (as Mooncake's put)
    assert store.get(k) == b"first"
    store.remove(k, force=True)
    k2 = key("ups")
    store.upsert(k2, b"new key")
    store.put(k2, b"replaced, and longer than before", upsert=True)
    assert store.get(k2) == b"replaced, and longer than before"
    store.put_parts(k2, b"a", bytearray(b"bc"), memoryview(b"def"), upsert=True)
    assert store.get(k2) == b"abcdef"


def test_remove_refused_while_leased(store):
    k = key("lease")
    store.put(k, b"leased")
    assert store.get(k) == b"leased"  # grants a read lease
    with pytest.raises(StoreError) as e:
        store.remove(k)
    assert code_of(e) == ErrorCode.OBJECT_HAS_LEASE == -706
    store.remove(k, force=True)
    with pytest.raises(StoreError) as e:
        store.get(k)
    assert code_of(e) == ErrorCode.OBJECT_NOT_FOUND


def test_missing_keys(store):
    k = key("missing")
    with pytest.raises(StoreError) as e:
        store.get(k)
    assert code_of(e) == ErrorCode.OBJECT_NOT_FOUND == -704
    assert store.get(k, default=None) is None
    assert store.get_buffer(k, default=b"") == b""
    assert store.exists(k) is False
    for call in (store.get_size, store.remove, store.get_replicas):
        with pytest.raises(StoreError) as e:
            call(k)
        assert code_of(e) == ErrorCode.OBJECT_NOT_FOUND


@pytest.mark.parametrize("bad", ["", "k" * (1 << 20)])
def test_empty_and_huge_keys_are_clear_errors(store, bad):
    for call in (lambda: store.put(bad, b"x"), lambda: store.get(bad),
                 lambda: store.remove(bad), lambda: store.exists(bad)):
        with pytest.raises(StoreError) as e:
            call()
        assert code_of(e) == ErrorCode.INVALID_PARAMS
        assert ("empty" in e.value.message) if not bad else ("4096" in e.value.message)
    with pytest.raises(StoreBatchError) as e:
        store.put_batch([key("ok"), bad], [b"1", b"2"])
    assert e.value.results[0] is None and e.value.results[1].code == ErrorCode.INVALID_PARAMS


def test_batches(store):
    keys = [key("b") for _ in range(5)]
    values = [data(100 * i + 1, i) for i in range(5)]
    store.put_batch(keys, values)
    assert store.get_batch(keys) == values
    assert [bytes(b) for b in store.batch_get_buffer(keys)] == values
    assert store.batch_exists(keys + [key("nope")]) == [True] * 5 + [False]
    new = key("new")
    store.put_batch(keys[:2] + [new], [b"x", b"y", b"z"])  # existing keys are kept
    assert store.get_batch(keys[:2] + [new]) == values[:2] + [b"z"]
    miss = key("miss")
    assert store.get_batch([keys[0], miss], default=None) == [values[0], None]
    with pytest.raises(StoreBatchError) as e:
        store.get_batch([miss, keys[1]])
    assert e.value.code == -704 and e.value.results[1] == values[1]
    reps = store.batch_get_replicas(keys[:2])
    assert all(len(r) == 1 and r[0].tier == "memory" for r in reps)
    with pytest.raises(StoreBatchError) as e:
        store.batch_remove(keys + [miss])  # the gets above leased every key
    assert [r.code for r in e.value.results] == [-706] * 5 + [-704]
    store.batch_remove(keys, force=True)
    assert store.batch_exists(keys) == [False] * 5
    with pytest.raises(StoreError) as e:
        store.put_batch(keys, values[:2])
    assert code_of(e) == ErrorCode.INVALID_PARAMS


def test_zero_copy_numpy(store):
    src = np.frombuffer(data(3 << 20), dtype=np.uint8).copy()
    dst = np.zeros(4 << 20, dtype=np.uint8)
    store.register_buffer(src)
    store.register_buffer(dst)
    try:
        k = key("zc")
        store.put_from(k, src)
        assert store.get_into(k, dst) == src.nbytes
        assert np.array_equal(dst[:src.nbytes], src)
        # Raw addresses inside registered memory work, outside fail without touching them.
        k2 = key("zc-raw")
        store.put_from(k2, src.ctypes.data + 100, 1000)
        assert store.get_into(k2, dst.ctypes.data + 7, 1000) == 1000
        assert bytes(dst[7:1007]) == bytes(src[100:1100])
        with pytest.raises(StoreError) as e:
            store.put_from(key("zc-bad"), 4096, 16)
        assert code_of(e) == ErrorCode.INVALID_PARAMS
        with pytest.raises(StoreError) as e:
            store.get_into(k, dst.ctypes.data, 10)  # too small for 3 MiB
        assert code_of(e) == ErrorCode.BUFFER_OVERFLOW
        with pytest.raises(StoreError) as e:
            store.get_into(k, b"read-only bytes")
        assert code_of(e) == ErrorCode.INVALID_PARAMS
        # Batch and scatter-gather forms.
        ks = [key("zcb") for _ in range(3)]
        store.batch_put_from(ks, [src[:10], (src.ctypes.data + 10, 20), src[30:60]])
        sizes = store.batch_get_into(ks, [dst[:100], (dst.ctypes.data + 100, 100), dst[200:300]])
        assert sizes == [10, 20, 30]
        assert bytes(dst[:10]) + bytes(dst[100:120]) + bytes(dst[200:230]) == bytes(src[:60])
        km = [key("zcm") for _ in range(2)]
        store.batch_put_from_multi_buffers(km, [[src[:5], src[1000:1003]], [src[7:8]]])
        dst[:] = 0
        got = store.batch_get_into_multi_buffers(km, [[dst[:4], dst[10:14]], [dst[20:21]]])
        assert got == [8, 1]
        assert bytes(dst[:4]) + bytes(dst[10:14]) == bytes(src[:5]) + bytes(src[1000:1003])
        assert dst[20] == src[7]
        store.batch_remove([k, k2] + ks + km, force=True)
    finally:
        store.unregister_buffer(src)
        store.unregister_buffer(dst)


def test_replicas(store, member):
    k = key("rep")
    v = data(70000)
    store.put(k, v, ReplicateConfig(replica_num=2, with_soft_pin=True))
    reps = store.get_replicas(k)
    assert len(reps) == 2
    assert {r.tier for r in reps} == {"memory"} and {r.status for r in reps} == {"complete"}
    assert {b.segment_name for r in reps for b in r.buffers} == {store.hostname,
                                                                 member.hostname}
    assert all(sum(b.length for b in r.buffers) == len(v) for r in reps)
    k2 = key("pref")
    store.put(k2, b"x" * 10, ReplicateConfig(preferred_segments=[member.hostname]))
    assert store.get_replicas(k2)[0].buffers[0].segment_name == member.hostname
    with pytest.raises(StoreError) as e:
        store.put(key("three"), b"x", ReplicateConfig(replica_num=3))  # only 2 segments
    assert code_of(e) == ErrorCode.NO_AVAILABLE_HANDLE
    store.batch_remove([k, k2], force=True)


def test_remove_by_regex_and_all(store):
    prefix = key("rx")
    store.put_batch([f"{prefix}-{i}" for i in range(4)], [b"v"] * 4)
    store.put(f"{prefix}-keep", b"v")
    assert store.remove_by_regex(f"{prefix}-[0-9]+", force=True) == 4
    assert store.exists(f"{prefix}-keep")
    assert store.remove_all(force=True) >= 1
    assert not store.exists(f"{prefix}-keep")


def test_wrong_types_raise_type_error(store):
    calls = [lambda: store.put(123, b"x"), lambda: store.put("k", "a str"),
             lambda: store.put("k", 42), lambda: store.get(None),
             lambda: store.put_batch("abc", [b"1"]), lambda: store.get_batch([1, 2]),
             lambda: store.put("k", b"x", config={"replica_num": 2}),
             lambda: store.register_buffer("not memory")]
    for call in calls:
        with pytest.raises(TypeError):
            call()


def test_unreachable_master_and_closed_store(store_master):
    with pytest.raises(StoreError) as e:
        ferry.store.Store("127.0.0.1:1", rpc_timeout=1)
    assert code_of(e) == ErrorCode.RPC_FAIL
    s = ferry.store.Store(store_master.address)
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(StoreError):
        s.get("anything")
