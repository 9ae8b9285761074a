"""ferry.store: the Pythonic client of Ferry's KV cache pool (C++ ferry::store::Client).

    import ferry.store
    with ferry.store.Store("127.0.0.1:50051", global_segment_size="64MiB") as store:
        store.put("greeting", b"hello")
        assert store.get("greeting") == b"hello"
        buf = numpy.zeros(1 << 20, dtype=numpy.uint8)
        store.register_buffer(buf)                      # zero-copy calls need this
        n = store.get_into("greeting", buf)             # bytes read

Failures raise StoreError (a ferry.FerryError) with .code, the Mooncake error number
(ErrorCode.OBJECT_NOT_FOUND == -704, ...), .name and .message. A batch call raises
StoreBatchError when any key failed; its .results holds, per key, the value or the
StoreError of that key. get/get_buffer/get_batch take a `default` returned for missing
keys instead of raising.

Memory: copying calls (put, get, ...) take any C-contiguous buffer-protocol object (bytes,
bytearray, memoryview, numpy arrays, CPU torch tensors by data_ptr()). Zero-copy calls
(put_from, get_into, ...) take registered memory: a buffer object, or an int address plus
length that lies inside memory registered with register_buffer (or with the engine the store
was given); anything else fails with INVALID_PARAMS instead of touching the address.

Thread safety: every method may be called from several threads; calls release the GIL.
"""

import bisect
import collections
import enum
import re
import threading
from dataclasses import dataclass, field

from ferry import _ferry
from ferry.engine import address_of

HAS_STORE = bool(getattr(_ferry, "HAS_STORE", False))
MAX_KEY_BYTES = getattr(_ferry, "MAX_KEY_BYTES", 4096)

if HAS_STORE:
    StoreError = _ferry.StoreError
    BufferHandle = _ferry.BufferHandle
else:  # the extension was built without the store client: importable, not usable
    class StoreError(_ferry.FerryError):
        """A store call failed (.code, .name, .message)."""

    BufferHandle = None


class ErrorCode(enum.IntEnum):
    """The store's error numbers (Mooncake's)."""

    OK = 0
    INTERNAL_ERROR = -1
    BUFFER_OVERFLOW = -10
    SHARD_INDEX_OUT_OF_RANGE = -100
    SEGMENT_NOT_FOUND = -101
    SEGMENT_ALREADY_EXISTS = -102
    CLIENT_NOT_FOUND = -103
    NO_AVAILABLE_HANDLE = -200
    INVALID_VERSION = -300
    INVALID_KEY = -400
    WRITE_FAIL = -500
    INVALID_PARAMS = -600
    ILLEGAL_CLIENT = -601
    INVALID_WRITE = -700
    INVALID_READ = -701
    INVALID_REPLICA = -702
    REPLICA_IS_NOT_READY = -703
    OBJECT_NOT_FOUND = -704
    OBJECT_ALREADY_EXISTS = -705
    OBJECT_HAS_LEASE = -706
    LEASE_EXPIRED = -707
    REPLICA_NOT_FOUND = -710
    REPLICA_IS_GONE = -712
    TRANSFER_FAIL = -800
    RPC_FAIL = -900
    ETCD_OPERATION_ERROR = -1000
    UNAVAILABLE_IN_CURRENT_STATUS = -1010
    UNAVAILABLE_IN_CURRENT_MODE = -1011
    FILE_NOT_FOUND = -1100
    FILE_OPEN_FAIL = -1101
    FILE_READ_FAIL = -1102
    FILE_WRITE_FAIL = -1103


def make_error(code, message):
    """An (unraised) StoreError for a Mooncake error number and a message."""
    code = int(code)
    try:
        name = ErrorCode(code).name
    except ValueError:
        name = "UNKNOWN"
    err = StoreError(f"{name} ({code}): {message}")
    err.code, err.name, err.message = code, name, message
    err.status_code = 3 if code == ErrorCode.INVALID_PARAMS else 13  # INVALID_ARGUMENT/INTERNAL
    return err


class StoreBatchError(StoreError):
    """Some keys of a batch call failed. .results: per key, the value (None for puts) or
    that key's StoreError; .code/.name/.message: those of the first failure."""

    def __init__(self, results):
        self.results = list(results)
        failed = [r for r in self.results if isinstance(r, StoreError)]
        first = failed[0]
        super().__init__(f"{len(failed)} of {len(self.results)} keys failed; first: {first}")
        self.code, self.name, self.message = first.code, first.name, first.message
        self.status_code = getattr(first, "status_code", 13)


_MISSING = object()

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
          "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value):
    """Bytes for an int or a string such as "4096", "16MB", "4GiB", "1.5G" (units are
    powers of 1024, case-insensitive). Raises ValueError (or TypeError) otherwise."""
    if isinstance(value, bool):
        raise TypeError("a size must be an int or a string, not bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value} is negative")
        return value
    if not isinstance(value, str):
        raise TypeError(f"a size must be an int or a string, not {type(value).__name__}")
    m = _SIZE_RE.match(value)
    unit = m and _UNITS.get(m.group(2).lower())
    if not m or unit is None:
        raise ValueError(f"bad size {value!r}: expected a number with an optional unit "
                         "(B, KB, MB, GB, TB, KiB, ..., powers of 1024)")
    return int(float(m.group(1)) * unit)


@dataclass
class ReplicateConfig:
    """Where and how many copies of an object to keep (store_types.h)."""

    replica_num: int = 1
    with_soft_pin: bool = False
    soft_pin_ttl_ms: int = 0          # 0: the master's --default_kv_soft_pin_ttl
    with_hard_pin: bool = False
    preferred_segments: list = field(default_factory=list)  # "host:port" or hostnames
    prefer_alloc_in_same_node: bool = False
    group_ids: list = field(default_factory=list)  # accepted; no effect yet

    def as_tuple(self):
        """The extension's config tuple."""
        return (int(self.replica_num), bool(self.with_soft_pin), int(self.soft_pin_ttl_ms),
                bool(self.with_hard_pin), [str(s) for s in self.preferred_segments],
                bool(self.prefer_alloc_in_same_node), [str(g) for g in self.group_ids])


_DEFAULT_CONFIG = ReplicateConfig()

# One range of a member's segment holding (part of) a replica.
BufferRange = collections.namedtuple("BufferRange", "segment_name address length")
# tier: "memory" | "disk" | "local_disk" (the SSD tier: a copy on the member disk_owner's
# disk); status: "processing" | "complete"; buffers: [BufferRange].
Replica = collections.namedtuple(
    "Replica", "tier status segment_id hostname buffers disk_owner disk_size")
_TIERS = ("memory", "disk", "local_disk")
_STATUSES = ("processing", "complete")


def _replica(t):
    tier, status, segment_id, hostname, buffers, disk_owner, disk_size = t
    return Replica(_TIERS[tier] if tier < len(_TIERS) else str(tier),
                   _STATUSES[status] if status < len(_STATUSES) else str(status),
                   segment_id, hostname, [BufferRange(*b) for b in buffers], disk_owner,
                   disk_size)


def _config(config):
    if config is None:
        return _DEFAULT_CONFIG.as_tuple()
    if not isinstance(config, ReplicateConfig):
        raise TypeError(f"config must be a ferry.store.ReplicateConfig, not "
                        f"{type(config).__name__}")
    return config.as_tuple()


def _is_error(x):
    return isinstance(x, StoreError)


def _check_batch(results):
    if any(_is_error(r) for r in results):
        raise StoreBatchError(results)
    return results


def _check_keys(keys):
    if isinstance(keys, (str, bytes)):
        raise TypeError("keys must be a list of str, not a single str")
    return list(keys)


class Store:
    """A member (global_segment_size > 0: lends that much DRAM to the pool) and user of
    the pool whose master is `master_server_address` ("host:port").

    local_hostname: this host's address ("host": a free port; "host:port").
    metadata_server: "P2PHANDSHAKE", "http://host:port/path" or "etcd://host:port".
    global_segment_size, local_buffer_size: ints or strings ("64MiB"); local_buffer_size is
    the registered staging memory of the copying calls.
    protocol: "auto" (shm to same-host members, tcp otherwise), "tcp", "shm", "ucx",
    "rdma" (shm, ucx over the host's RDMA NICs, tcp; without RDMA as "auto"). secret: the deployment secret (None: FERRY_KV_SECRET).
    rpc_timeout, transfer_timeout, ping_interval: seconds (None: 5, 30, 1).
    engine: a ferry.TransferEngine to use instead of creating one (kept alive by the store).
    enable_ssd_offload, ssd_offload_path, ssd_capacity: lend a disk to the pool (the SSD
    tier: needs a segment and a master started with --enable_offload); the directory
    defaults to $MOONCAKE_OFFLOAD_FILE_STORAGE_PATH, ssd_capacity (int or "64GB") to 0,
    as much as the disk holds.
    Raises StoreError (RPC_FAIL if the master is unreachable, INVALID_PARAMS for bad
    options).
    """

    def __init__(self, master_server_address="127.0.0.1:50051", *, local_hostname="127.0.0.1",
                 metadata_server="P2PHANDSHAKE", global_segment_size=0,
                 local_buffer_size=16 << 20, protocol="auto", device_name="", secret=None,
                 rpc_timeout=None, transfer_timeout=None, ping_interval=None, engine=None,
                 enable_ssd_offload=False, ssd_offload_path="", ssd_capacity=0):
        if not HAS_STORE:
            raise make_error(ErrorCode.INTERNAL_ERROR,
                             "this build of ferry has no store client (ferry_store)")
        self._engine = engine  # keeps a borrowed engine (and its registrations) alive
        raw_engine = getattr(engine, "_engine", engine)
        try:
            segment, staging = parse_size(global_segment_size), parse_size(local_buffer_size)
            disk = parse_size(ssd_capacity)
        except ValueError as e:
            raise make_error(ErrorCode.INVALID_PARAMS, str(e)) from None
        self._store = _ferry.Store(
            str(local_hostname), str(metadata_server), str(master_server_address), segment,
            staging, str(protocol), str(device_name), secret, _ms(rpc_timeout),
            _ms(transfer_timeout), _ms(ping_interval), raw_engine, bool(enable_ssd_offload),
            str(ssd_offload_path or ""), disk)
        self._lock = threading.Lock()
        self._registered = {}  # addr -> (length, keepalive object); GUARDED_BY(_lock)
        self._starts = []      # sorted keys of _registered; GUARDED_BY(_lock)

    # --- lifetime -------------------------------------------------------------------
    def close(self):
        """Unmounts this store's segment (objects whose only replica was there are
        dropped), stops pinging, frees the memory. Idempotent."""
        try:
            self._store.close()
        finally:
            with self._lock:
                self._registered.clear()
                self._starts = []

    @property
    def closed(self):
        return self._store.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def hostname(self):
        """This store's transfer-engine segment name ("host:port")."""
        return self._store.hostname

    def health_check(self):
        """Returns when the master answers; raises StoreError (RPC_FAIL) otherwise."""
        self._store.health_check()

    def counters(self):
        """Dict of monotonic counters (puts, put_failures, gets, get_failures, bytes_put,
        bytes_got, rpcs, rpc_failures, remounts)."""
        return self._store.counters()

    # --- memory ---------------------------------------------------------------------
    def register_buffer(self, buffer_or_addr, length=None):
        """Registers memory for the zero-copy calls; returns its address. A buffer object is
        kept alive until unregistered or the store is closed."""
        addr, length, keep = _address(buffer_or_addr, length)
        self._store.register_buffer(addr, length)
        with self._lock:
            self._registered[addr] = (length, keep)
            self._starts = sorted(self._registered)
        return addr

    def unregister_buffer(self, buffer_or_addr):
        """Unregisters by start address (or the object registered)."""
        addr = buffer_or_addr if isinstance(buffer_or_addr, int) else \
            _address(buffer_or_addr, None)[0]
        self._store.unregister_buffer(addr)
        with self._lock:
            self._registered.pop(addr, None)
            self._starts = sorted(self._registered)

    def is_registered(self, addr, length):
        """Whether [addr, addr + length) lies inside memory registered with this store
        (or with the engine it was given)."""
        with self._lock:
            i = bisect.bisect_right(self._starts, addr) - 1
            if i >= 0 and addr + length <= self._starts[i] + self._registered[self._starts[i]][0]:
                return True
        check = getattr(self._engine, "is_registered", None)
        return bool(check and check(addr, length))

    def registered_region(self, addr):
        """(start, length) of the registered buffer containing addr, or None."""
        with self._lock:
            i = bisect.bisect_right(self._starts, addr) - 1
            if i >= 0:
                start = self._starts[i]
                length = self._registered[start][0]
                if addr < start + length:
                    return start, length
        return None

    def _zero_copy(self, buffer_or_addr, length=None, writable=False):
        """(addr, length) of registered memory for a zero-copy call."""
        addr, length, keep = _address(buffer_or_addr, length, writable=writable)
        if keep is None and length and not self.is_registered(addr, length):
            raise make_error(ErrorCode.INVALID_PARAMS,
                             f"[{addr:#x}, +{length}) is not inside memory registered with "
                             "register_buffer: register it, or pass the buffer object")
        return addr, length

    # --- copying calls --------------------------------------------------------------
    def put(self, key, value, config=None, *, upsert=False):
        """Stores `value` (bytes-like) under `key`. Without upsert an existing key is kept
        and the call still succeeds (the first writer wins); with upsert it is replaced."""
        self._store.put(key, _copy_source(value), _config(config), int(bool(upsert)))

    def upsert(self, key, value, config=None):
        """put(key, value, config, upsert=True)."""
        self.put(key, value, config, upsert=True)

    def put_parts(self, key, *parts, config=None, upsert=False):
        """Stores the concatenation of `parts` (bytes-like) as one object."""
        self._store.put_parts(key, [_copy_source(p) for p in parts], _config(config),
                              int(bool(upsert)))

    def put_batch(self, keys, values, config=None, *, upsert=False):
        """Stores values[i] under keys[i]. Raises StoreBatchError if any key failed."""
        keys = _check_keys(keys)
        _check_batch(self._store.put_batch(keys, [_copy_source(v) for v in values],
                                           _config(config), int(bool(upsert))))

    def get(self, key, default=_MISSING):
        """The object's bytes; `default` (if given) for a missing key."""
        try:
            return self._store.get(key)
        except StoreError as e:
            if default is _MISSING or e.code != ErrorCode.OBJECT_NOT_FOUND:
                raise
            return default

    def get_buffer(self, key, default=_MISSING):
        """The object's bytes as a BufferHandle (buffer protocol; ptr(), size())."""
        try:
            return self._store.get_buffer(key)
        except StoreError as e:
            if default is _MISSING or e.code != ErrorCode.OBJECT_NOT_FOUND:
                raise
            return default

    def get_batch(self, keys, default=_MISSING):
        """[bytes] of keys, in order; `default` (if given) for missing ones."""
        return self._fill(self._store.get_batch(_check_keys(keys), False), default)

    def batch_get_buffer(self, keys, default=_MISSING):
        """[BufferHandle] of keys, in order; `default` (if given) for missing ones."""
        return self._fill(self._store.get_batch(_check_keys(keys), True), default)

    @staticmethod
    def _fill(results, default):
        if default is not _MISSING:
            results = [default if _is_error(r) and r.code == ErrorCode.OBJECT_NOT_FOUND else r
                       for r in results]
        return _check_batch(results)

    # --- zero-copy calls ------------------------------------------------------------
    def put_from(self, key, buffer_or_addr, length=None, config=None, *, upsert=False):
        """Stores registered memory (an object, or an address + length) under `key`."""
        addr, length = self._zero_copy(buffer_or_addr, length)
        self._store.put_from(key, addr, length, _config(config), int(bool(upsert)))

    def batch_put_from(self, keys, buffers, config=None, *, upsert=False):
        """buffers[i]: registered memory (object or (addr, length)) stored under keys[i]."""
        keys = _check_keys(keys)
        pieces = [self._zero_copy(*_piece(b)) for b in buffers]
        _check_batch(self._store.batch_put_from(keys, pieces, _config(config),
                                                int(bool(upsert))))

    def batch_put_from_multi_buffers(self, keys, buffer_lists, config=None, *, upsert=False):
        """buffer_lists[i]: the pieces of keys[i] (objects or (addr, length)), in order."""
        keys = _check_keys(keys)
        lists = [[self._zero_copy(*_piece(b)) for b in pieces] for pieces in buffer_lists]
        _check_batch(self._store.batch_put_from_multi_buffers(keys, lists, _config(config),
                                                              int(bool(upsert))))

    def get_into(self, key, buffer_or_addr, length=None):
        """Reads the object into registered, writable memory; returns its size. Raises
        StoreError BUFFER_OVERFLOW when it is larger than the buffer."""
        addr, length = self._zero_copy(buffer_or_addr, length, writable=True)
        return self._store.get_into(key, addr, length)

    def batch_get_into(self, keys, buffers):
        """[size] of keys read into buffers[i] (objects or (addr, length))."""
        keys = _check_keys(keys)
        pieces = [self._zero_copy(*_piece(b), writable=True) for b in buffers]
        return _check_batch(self._store.batch_get_into(keys, pieces))

    def batch_get_into_multi_buffers(self, keys, buffer_lists):
        """[size] of keys, each scattered over buffer_lists[i] in order."""
        keys = _check_keys(keys)
        lists = [[self._zero_copy(*_piece(b), writable=True) for b in pieces]
                 for pieces in buffer_lists]
        return _check_batch(self._store.batch_get_into_multi_buffers(keys, lists))

    # --- metadata calls -------------------------------------------------------------
    def exists(self, key):
        """True when the object exists and is complete (grants a read lease)."""
        return self._store.exist(key)

    def batch_exists(self, keys):
        return _check_batch(self._store.batch_exist(_check_keys(keys)))

    def get_size(self, key):
        return self._store.get_size(key)

    def get_replicas(self, key):
        """[Replica] of the object."""
        return [_replica(t) for t in self._store.replica_descriptors(key)]

    def batch_get_replicas(self, keys):
        results = self._store.batch_replica_descriptors(_check_keys(keys))
        return _check_batch([r if _is_error(r) else [_replica(t) for t in r] for r in results])

    def remove(self, key, force=False):
        """Removes the object. Raises OBJECT_NOT_FOUND, or OBJECT_HAS_LEASE while a reader
        holds a lease unless `force`."""
        self._store.remove(key, bool(force))

    def batch_remove(self, keys, force=False):
        _check_batch(self._store.batch_remove(_check_keys(keys), bool(force)))

    def remove_by_regex(self, regex, force=False):
        """Number of objects removed whose whole key matches the RE2 `regex` (leased ones
        are skipped unless `force`)."""
        return self._store.remove_by_regex(regex, bool(force))

    def remove_all(self, force=False):
        """Number of objects removed (leased ones are skipped unless `force`)."""
        return self._store.remove_all(bool(force))


def _ms(seconds):
    return 0 if seconds is None else max(1, int(seconds * 1000))


def _address(obj, length, writable=False):
    """address_of for store calls: failures become StoreError INVALID_PARAMS."""
    if isinstance(obj, bool) or not (isinstance(obj, int) or hasattr(obj, "data_ptr")
                                     or _has_buffer(obj)):
        raise TypeError(f"expected a buffer-protocol object, a tensor or an int address, "
                        f"not {type(obj).__name__}")
    try:
        addr, length, keep = address_of(obj, length)
        if writable and keep is not None and not hasattr(keep, "data_ptr") and \
                _ferry.buffer_info(keep)[2]:
            raise _ferry.InvalidArgumentError("the buffer is read-only")
    except _ferry.InvalidArgumentError as e:
        raise make_error(ErrorCode.INVALID_PARAMS, getattr(e, "message", str(e))) from None
    return addr, length, keep


def _has_buffer(obj):
    try:
        memoryview(obj).release()
        return True
    except TypeError:
        return False


def _copy_source(value):
    """(addr, length) of a bytes-like value of a copying call (the caller keeps it alive)."""
    if isinstance(value, (int, str)):
        raise TypeError(f"value must be bytes-like (bytes, bytearray, memoryview, numpy "
                        f"array), not {type(value).__name__}")
    addr, length, _ = _address(value, None)
    return addr, length


def _piece(b):
    """(buffer_or_addr, length) of a zero-copy piece: an object or an (addr, length)."""
    if isinstance(b, tuple):
        if len(b) != 2:
            raise TypeError("a piece is a buffer object or an (addr, length) tuple")
        return b
    return b, None
