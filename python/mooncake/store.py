"""Drop-in `mooncake.store` backed by Ferry's store (ferry.store / ferry::store::Client).

    from mooncake.store import MooncakeDistributedStore, ReplicateConfig
    store = MooncakeDistributedStore()
    store.setup("127.0.0.1", "P2PHANDSHAKE", 512 << 20, 128 << 20, "tcp", "",
                "127.0.0.1:50051")
    store.put("hello", b"world")
    assert store.get("hello") == b"world"

Same class and method names, argument order, keyword names and return conventions as
Mooncake's pybind module: ints are 0 (or a count / size) on success and a negative Mooncake
error number on failure (OBJECT_NOT_FOUND -704, OBJECT_HAS_LEASE -706, ...), get returns b""
for a missing key, get_buffer None. Failures are logged on the "mooncake.store" logger;
nothing raises except programming errors (wrong argument types: TypeError).

Differences from the reference are listed in docs/python.md.
"""

import ctypes
import enum
import logging

import ferry.store as fs
from ferry.store import BufferHandle, ErrorCode  # noqa: F401 (re-exported)

log = logging.getLogger("mooncake.store")

_OK = 0
_INVALID_PARAMS = int(ErrorCode.INVALID_PARAMS)
_OBJECT_NOT_FOUND = int(ErrorCode.OBJECT_NOT_FOUND)
_CODE = object()  # _call's default: report failures as their error number


class SoftPinAction(enum.IntEnum):
    """How a put treats the object's soft pin: keep it as it is, set it, or clear it."""

    PRESERVE = 0
    ENABLE = 1
    DISABLE = 2


class ReplicaStatus(enum.IntEnum):
    UNDEFINED = 0
    INITIALIZED = 1
    PROCESSING = 2
    COMPLETE = 3
    REMOVED = 4
    FAILED = 5


# py::enum_(...).export_values() in the reference: the names exist at module level too.
UNDEFINED, INITIALIZED, PROCESSING, COMPLETE, REMOVED, FAILED = tuple(ReplicaStatus)


class ReplicateConfig:
    """Replication settings of a put (Mooncake's fields; see docs/python.md for which take
    effect). Unknown attributes raise AttributeError, as on the reference's pybind class."""

    __slots__ = ("replica_num", "soft_pin_action", "with_soft_pin", "soft_pin_ttl_ms",
                 "with_hard_pin", "preferred_segment", "preferred_segments",
                 "prefer_alloc_in_same_node", "group_ids", "nof_replica_num",
                 "preferred_nof_segments", "data_type")

    def __init__(self):
        self.replica_num = 1
        self.soft_pin_action = SoftPinAction.PRESERVE
        self.with_soft_pin = False
        self.soft_pin_ttl_ms = 0
        self.with_hard_pin = False
        self.preferred_segment = ""
        self.preferred_segments = []
        self.prefer_alloc_in_same_node = False
        self.group_ids = None
        self.nof_replica_num = 0
        self.preferred_nof_segments = []
        self.data_type = 0

    def _to_ferry(self):
        soft = bool(self.with_soft_pin)
        action = int(self.soft_pin_action)
        if action == SoftPinAction.ENABLE:
            soft = True
        elif action == SoftPinAction.DISABLE:
            soft = False
        preferred = [str(s) for s in (self.preferred_segments or [])]
        if not preferred and self.preferred_segment:
            preferred = [str(self.preferred_segment)]
        return fs.ReplicateConfig(
            replica_num=int(self.replica_num), with_soft_pin=soft,
            soft_pin_ttl_ms=int(self.soft_pin_ttl_ms or 0), with_hard_pin=bool(self.with_hard_pin),
            preferred_segments=preferred,
            prefer_alloc_in_same_node=bool(self.prefer_alloc_in_same_node),
            group_ids=[str(g) for g in (self.group_ids or [])])

    def __str__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ReplicateConfig({fields})"

    __repr__ = __str__


class BufferDescriptor:
    """One range of a member's segment: size, buffer_address, protocol,
    transport_endpoint (the member's "host:port")."""

    __slots__ = ("size", "buffer_address", "protocol", "transport_endpoint")

    def __init__(self, size=0, buffer_address=0, protocol="", transport_endpoint=""):
        self.size, self.buffer_address = size, buffer_address
        self.protocol, self.transport_endpoint = protocol, transport_endpoint

    def __repr__(self):
        return (f"BufferDescriptor(size={self.size}, buffer_address={self.buffer_address:#x}, "
                f"protocol={self.protocol!r}, transport_endpoint={self.transport_endpoint!r})")


class MemoryDescriptor:
    """buffer_descriptor: the replica's first (in Ferry: only) range; buffer_descriptors:
    all of them (Ferry extension)."""

    __slots__ = ("buffer_descriptor", "buffer_descriptors")

    def __init__(self, buffers):
        self.buffer_descriptors = buffers
        self.buffer_descriptor = buffers[0] if buffers else BufferDescriptor()

    def __repr__(self):
        return f"MemoryDescriptor(buffer_descriptor={self.buffer_descriptor!r})"


class DiskDescriptor:
    __slots__ = ("file_path", "object_size")

    def __init__(self, file_path="", object_size=0):
        self.file_path, self.object_size = file_path, object_size

    def __repr__(self):
        return f"DiskDescriptor(file_path={self.file_path!r}, object_size={self.object_size})"


class ReplicaDescriptor:
    """Where one copy of an object lives."""

    __slots__ = ("status", "_replica", "_protocol")

    def __init__(self, replica, protocol):
        self._replica, self._protocol = replica, protocol
        self.status = ReplicaStatus.COMPLETE if replica.status == "complete" else \
            ReplicaStatus.PROCESSING

    def is_memory_replica(self):
        return self._replica.tier == "memory"

    def is_disk_replica(self):
        return self._replica.tier == "disk"

    def is_local_disk_replica(self):
        """A copy in a member's SSD tier (Mooncake's LOCAL_DISK)."""
        return self._replica.tier == "local_disk"

    def get_memory_descriptor(self):
        """Raises RuntimeError for a disk replica."""
        if not self.is_memory_replica():
            raise RuntimeError("not a memory replica")
        return MemoryDescriptor([BufferDescriptor(b.length, b.address, self._protocol,
                                                  b.segment_name)
                                 for b in self._replica.buffers])

    def get_disk_descriptor(self):
        """Raises RuntimeError for a memory replica."""
        if not self.is_disk_replica():
            raise RuntimeError("not a disk replica")
        return DiskDescriptor(self._replica.disk_owner, self._replica.disk_size)

    def __repr__(self):
        kind = self._replica.tier
        return f"ReplicaDescriptor({kind}, status={self.status.name}, " \
               f"segment={self._replica.segment_id!r})"


def _ints(values, what):
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be ints, got {type(v).__name__}")
        out.append(v)
    return out


def _str_keys(keys):
    if isinstance(keys, (str, bytes)):
        raise TypeError("keys must be a list of str")
    keys = list(keys)
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"keys must be str, got {type(k).__name__}")
    return keys


def _key(key):
    if not isinstance(key, str):
        raise TypeError(f"key must be str, got {type(key).__name__}")
    return key


def _cfg(config):
    if config is None:
        return None
    if not isinstance(config, ReplicateConfig):
        raise TypeError(f"config must be a mooncake.store.ReplicateConfig, not "
                        f"{type(config).__name__}")
    return config._to_ferry()


def _code(result):
    return result.code if isinstance(result, fs.StoreError) else _OK


_SETUP_KEYS = ("local_hostname", "metadata_server", "global_segment_size", "local_buffer_size",
               "protocol", "rdma_devices", "master_server_addr", "ipc_socket_path",
               "enable_ssd_offload", "ssd_offload_path", "tenant_id",
               "enable_client_http_server", "client_http_port")


def _truthy(v):
    return v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")


class MooncakeDistributedStore:
    """Call setup() before anything else; close() when done."""

    def __init__(self):
        self._store = None
        self._protocol = ""

    # --- setup / teardown -----------------------------------------------------------
    def setup(self, local_hostname, metadata_server=None, global_segment_size=None,
              local_buffer_size=None, protocol=None, rdma_devices=None,
              master_server_addr=None, engine=None, enable_ssd_offload=False,
              ssd_offload_path="", tenant_id="default", enable_client_http_server=False,
              client_http_port=9300):
        """0 on success, a negative error number otherwise. Also setup(config: dict)."""
        if isinstance(local_hostname, dict):
            return self._setup_dict(local_hostname)
        missing = [n for n, v in (("metadata_server", metadata_server),
                                  ("global_segment_size", global_segment_size),
                                  ("local_buffer_size", local_buffer_size),
                                  ("protocol", protocol), ("rdma_devices", rdma_devices),
                                  ("master_server_addr", master_server_addr)) if v is None]
        if missing:
            raise TypeError(f"setup() missing arguments: {', '.join(missing)}")
        for name, v in (("local_hostname", local_hostname), ("metadata_server", metadata_server),
                        ("protocol", protocol), ("rdma_devices", rdma_devices),
                        ("master_server_addr", master_server_addr)):
            if not isinstance(v, str):
                raise TypeError(f"{name} must be str, got {type(v).__name__}")
        if _truthy(enable_client_http_server):
            log.warning("setup: enable_client_http_server is not supported by Ferry; ignored")
        if tenant_id not in ("", "default"):
            log.warning("setup: tenant_id %r ignored (Ferry has one tenant)", tenant_id)
        return self._setup(local_hostname, metadata_server, global_segment_size,
                           local_buffer_size, protocol, rdma_devices, master_server_addr,
                           engine, _truthy(enable_ssd_offload), ssd_offload_path)

    def _setup_dict(self, config):
        unknown = sorted(set(map(str, config)) - set(_SETUP_KEYS))
        if unknown:
            log.warning("setup: unknown keys ignored: %s", ", ".join(unknown))
        for required in ("local_hostname", "metadata_server"):
            if required not in config:
                log.error("setup: %r is required", required)
                return _INVALID_PARAMS
        return self.setup(str(config["local_hostname"]), str(config["metadata_server"]),
                          config.get("global_segment_size", 16 << 20),
                          config.get("local_buffer_size", 16 << 20),
                          str(config.get("protocol", "tcp")), str(config.get("rdma_devices", "")),
                          str(config.get("master_server_addr", "127.0.0.1:50051")),
                          enable_ssd_offload=config.get("enable_ssd_offload", False),
                          ssd_offload_path=str(config.get("ssd_offload_path", "")),
                          tenant_id=str(config.get("tenant_id", "default")),
                          enable_client_http_server=config.get("enable_client_http_server",
                                                               False))

    def _setup(self, local_hostname, metadata_server, global_segment_size, local_buffer_size,
               protocol, rdma_devices, master_server_addr, engine, enable_ssd_offload=False,
               ssd_offload_path=""):
        from mooncake.engine import _metadata_url  # same metadata strings as the engine
        if self._store is not None:  # the reference replaces its client
            self.close()
        try:
            segment = fs.parse_size(global_segment_size)
            staging = fs.parse_size(local_buffer_size)
            metadata = _metadata_url(metadata_server)
        except (ValueError, TypeError) as e:
            log.error("setup: %s", e)
            return _INVALID_PARAMS
        except fs._ferry.FerryError as e:
            log.error("setup: %s", e)
            return _INVALID_PARAMS
        inner = engine
        if inner is not None and hasattr(inner, "get_engine"):  # mooncake.engine.TransferEngine
            inner = inner.get_engine()
            if inner is None:
                log.error("setup: the engine given is not initialized")
                return _INVALID_PARAMS
        proto = (protocol or "tcp").lower()
        try:
            self._store = fs.Store(master_server_addr, local_hostname=local_hostname,
                                   metadata_server=metadata, global_segment_size=segment,
                                   local_buffer_size=staging, protocol=proto,
                                   device_name=rdma_devices, engine=inner,
                                   enable_ssd_offload=enable_ssd_offload,
                                   ssd_offload_path=ssd_offload_path or "")
        except fs.StoreError as e:
            log.error("setup: %s", e)
            return e.code
        except fs._ferry.FerryError as e:  # e.g. the engine given is closed
            log.error("setup: %s", e)
            return _INVALID_PARAMS
        self._protocol = proto
        return _OK

    def close(self):
        """0; tears the client down (later calls fail with INVALID_PARAMS)."""
        store, self._store = self._store, None
        if store is None:
            return _OK
        try:
            store.close()
        except fs.StoreError as e:
            log.error("close: %s", e)
            return e.code
        return _OK

    def health_check(self):
        """0 healthy, 1 not set up / closed, 2 master unreachable."""
        if self._store is None:
            return 1
        try:
            self._store.health_check()
            return 0
        except fs.StoreError as e:
            log.error("health_check: %s", e)
            return 2

    def get_hostname(self):
        """This store's "host:port" (the segment name others see); "" before setup."""
        return self._store.hostname if self._store is not None else ""

    def _call(self, what, fn, failure=_CODE):
        """fn(store); a StoreError becomes its code (or `failure`) after being logged;
        before setup / after close: INVALID_PARAMS (or `failure`)."""
        if self._store is None:
            log.error("%s: the store is not set up", what)
            return _INVALID_PARAMS if failure is _CODE else failure
        try:
            return fn(self._store)
        except fs.StoreError as e:
            if e.code != _OBJECT_NOT_FOUND:
                log.error("%s: %s", what, e)
            return e.code if failure is _CODE else failure

    def _batch(self, what, n, fn, item=lambda r: _OK if r is None else r):
        """[int] per key: fn(store)'s per-key results (None for a put), each error as its
        number and the rest through `item`; whole-call failures fill every entry."""
        if self._store is None:
            log.error("%s: the store is not set up", what)
            return [_INVALID_PARAMS] * n
        try:
            results = fn(self._store)
        except fs.StoreBatchError as e:
            results = e.results
        except fs.StoreError as e:
            log.error("%s: %s", what, e)
            return [e.code] * n
        if results is None:  # a batch put that succeeded for every key
            results = [None] * n
        return [self._log_item(what, r) if isinstance(r, fs.StoreError) else item(r)
                for r in results]

    @staticmethod
    def _log_item(what, r):
        if r.code != _OBJECT_NOT_FOUND:
            log.error("%s: %s", what, r)
        return r.code

    # --- memory ---------------------------------------------------------------------
    def register_buffer(self, buffer_ptr, size):
        _ints((buffer_ptr, size), "buffer_ptr and size")
        return self._call("register_buffer",
                          lambda s: (s.register_buffer(buffer_ptr, size), _OK)[1])

    def unregister_buffer(self, buffer_ptr):
        _ints((buffer_ptr,), "buffer_ptr")
        return self._call("unregister_buffer",
                          lambda s: (s.unregister_buffer(buffer_ptr), _OK)[1])

    # --- copying puts ---------------------------------------------------------------
    def put(self, key, value, config=None):
        cfg = _cfg(config)
        return self._call("put", lambda s: (s.put(_key(key), value, cfg), _OK)[1])

    def upsert(self, key, value, config=None):
        cfg = _cfg(config)
        return self._call("upsert", lambda s: (s.put(_key(key), value, cfg, upsert=True),
                                               _OK)[1])

    def put_parts(self, key, *parts, config=None):
        cfg = _cfg(config)
        return self._call("put_parts",
                          lambda s: (s.put_parts(_key(key), *parts, config=cfg), _OK)[1])

    def upsert_parts(self, key, *parts, config=None):
        cfg = _cfg(config)
        return self._call("upsert_parts", lambda s: (
            s.put_parts(_key(key), *parts, config=cfg, upsert=True), _OK)[1])

    def put_batch(self, keys, values, config=None):
        """0 when every key was stored, else the first failure's number."""
        return self._put_batch("put_batch", keys, values, config, False)

    def upsert_batch(self, keys, values, config=None):
        return self._put_batch("upsert_batch", keys, values, config, True)

    def _put_batch(self, what, keys, values, config, upsert):
        keys, values, cfg = _str_keys(keys), list(values), _cfg(config)
        if len(keys) != len(values):
            log.error("%s: %d keys but %d values", what, len(keys), len(values))
            return _INVALID_PARAMS
        codes = self._batch(what, len(keys),
                            lambda s: s.put_batch(keys, values, cfg, upsert=upsert))
        return next((c for c in codes if c != _OK), _OK)

    # --- copying gets ---------------------------------------------------------------
    def get(self, key):
        """The object's bytes; b"" when missing or on failure."""
        return self._call("get", lambda s: s.get(_key(key)), failure=b"")

    def get_batch(self, keys):
        """[bytes]; b"" for keys missing or failed."""
        keys = _str_keys(keys)
        return self._gets("get_batch", keys, lambda s: s.get_batch(keys, default=b""), b"")

    def get_buffer(self, key):
        """A BufferHandle (buffer protocol) of the object's bytes; None when missing."""
        return self._call("get_buffer", lambda s: s.get_buffer(_key(key)), failure=None)

    def batch_get_buffer(self, keys):
        """[BufferHandle or None]."""
        keys = _str_keys(keys)
        return self._gets("batch_get_buffer", keys,
                          lambda s: s.batch_get_buffer(keys, default=None), None)

    @staticmethod
    def _not_set_up(what, failure):
        log.error("%s: the store is not set up", what)
        return failure

    def _gets(self, what, keys, fn, failure):
        if self._store is None:
            return self._not_set_up(what, [failure] * len(keys))
        try:
            return fn(self._store)
        except fs.StoreBatchError as e:
            out = []
            for r in e.results:
                if isinstance(r, fs.StoreError):
                    log.error("%s: %s", what, r)
                    r = failure
                out.append(r)
            return out
        except fs.StoreError as e:
            log.error("%s: %s", what, e)
            return [failure] * len(keys)

    # --- zero-copy puts -------------------------------------------------------------
    def put_from(self, key, buffer_ptr, size, config=None):
        _ints((buffer_ptr, size), "buffer_ptr and size")
        cfg = _cfg(config)
        return self._call("put_from",
                          lambda s: (s.put_from(_key(key), buffer_ptr, size, cfg), _OK)[1])

    def upsert_from(self, key, buffer_ptr, size, config=None):
        _ints((buffer_ptr, size), "buffer_ptr and size")
        cfg = _cfg(config)
        return self._call("upsert_from", lambda s: (
            s.put_from(_key(key), buffer_ptr, size, cfg, upsert=True), _OK)[1])

    def batch_put_from(self, keys, buffer_ptrs, sizes, config=None):
        """[0 or negative] per key."""
        return self._put_from_batch("batch_put_from", keys, buffer_ptrs, sizes, config, False)

    def batch_upsert_from(self, keys, buffer_ptrs, sizes, config=None):
        return self._put_from_batch("batch_upsert_from", keys, buffer_ptrs, sizes, config,
                                    True)

    def _put_from_batch(self, what, keys, buffer_ptrs, sizes, config, upsert):
        keys, cfg = _str_keys(keys), _cfg(config)
        ptrs, sizes = _ints(buffer_ptrs, "buffer_ptrs"), _ints(sizes, "sizes")
        if not len(keys) == len(ptrs) == len(sizes):
            log.error("%s: keys, buffer_ptrs and sizes differ in length", what)
            return [_INVALID_PARAMS] * len(keys)
        pieces = list(zip(ptrs, sizes))
        return self._batch(what, len(keys),
                           lambda s: s.batch_put_from(keys, pieces, cfg, upsert=upsert))

    def batch_put_from_multi_buffers(self, keys, all_buffer_ptrs, all_sizes, config=None):
        """[0 or negative] per key; keys[i] is the concatenation of its buffers."""
        return self._multi_put("batch_put_from_multi_buffers", keys, all_buffer_ptrs,
                               all_sizes, config, False)

    def batch_upsert_from_multi_buffers(self, keys, all_buffer_ptrs, all_sizes, config=None):
        return self._multi_put("batch_upsert_from_multi_buffers", keys, all_buffer_ptrs,
                               all_sizes, config, True)

    def _multi_put(self, what, keys, all_ptrs, all_sizes, config, upsert):
        keys, cfg = _str_keys(keys), _cfg(config)
        lists = self._piece_lists(what, keys, all_ptrs, all_sizes)
        if lists is None:
            return [_INVALID_PARAMS] * len(keys)
        return self._batch(what, len(keys), lambda s: s.batch_put_from_multi_buffers(
            keys, lists, cfg, upsert=upsert))

    @staticmethod
    def _piece_lists(what, keys, all_ptrs, all_sizes):
        all_ptrs, all_sizes = list(all_ptrs), list(all_sizes)
        if not len(keys) == len(all_ptrs) == len(all_sizes):
            log.error("%s: keys, all_buffer_ptrs and all_sizes differ in length", what)
            return None
        lists = []
        for ptrs, sizes in zip(all_ptrs, all_sizes):
            ptrs, sizes = _ints(ptrs, "buffer pointers"), _ints(sizes, "sizes")
            if len(ptrs) != len(sizes):
                log.error("%s: a key's buffer pointers and sizes differ in length", what)
                return None
            lists.append(list(zip(ptrs, sizes)))
        return lists

    # --- zero-copy gets -------------------------------------------------------------
    def get_into(self, key, buffer_ptr, size):
        """Bytes read, or a negative error number."""
        _ints((buffer_ptr, size), "buffer_ptr and size")
        return self._call("get_into", lambda s: s.get_into(_key(key), buffer_ptr, size))

    def batch_get_into(self, keys, buffer_ptrs, sizes):
        """[bytes read or negative] per key."""
        keys = _str_keys(keys)
        ptrs, sizes = _ints(buffer_ptrs, "buffer_ptrs"), _ints(sizes, "sizes")
        if not len(keys) == len(ptrs) == len(sizes):
            log.error("batch_get_into: keys, buffer_ptrs and sizes differ in length")
            return [_INVALID_PARAMS] * len(keys)
        pieces = list(zip(ptrs, sizes))
        return self._batch("batch_get_into", len(keys),
                           lambda s: s.batch_get_into(keys, pieces))

    def batch_get_into_multi_buffers(self, keys, all_buffer_ptrs, all_sizes,
                                     prefer_alloc_in_same_node=False):
        """[bytes read or negative] per key, scattered over its buffers in order.
        prefer_alloc_in_same_node is accepted and ignored (reads pick a replica anyway)."""
        keys = _str_keys(keys)
        lists = self._piece_lists("batch_get_into_multi_buffers", keys, all_buffer_ptrs,
                                  all_sizes)
        if lists is None:
            return [_INVALID_PARAMS] * len(keys)
        return self._batch("batch_get_into_multi_buffers", len(keys),
                           lambda s: s.batch_get_into_multi_buffers(keys, lists))

    def get_into_ranges(self, buffer_ptrs, all_keys, all_dst_offsets, all_src_offsets,
                        all_sizes):
        """results[i][j][k]: bytes copied from all_keys[i][j][src:src+size] to
        buffer_ptrs[i]+dst, or a negative error number. Each buffer must be registered; the
        destination range must stay inside its registered buffer, the source range inside
        the object."""
        ptrs = _ints(buffer_ptrs, "buffer_ptrs")
        all_keys, all_dst = list(all_keys), list(all_dst_offsets)
        all_src, all_len = list(all_src_offsets), list(all_sizes)
        if not len(ptrs) == len(all_keys) == len(all_dst) == len(all_src) == len(all_len):
            log.error("get_into_ranges: the top-level lists differ in length")
            return [[[_INVALID_PARAMS] for _ in keys] for keys in all_keys]
        plans = []  # per buffer: per key: list of (dst, src, size) or an error code
        wanted = []
        for keys, dsts, srcs, lens in zip(all_keys, all_dst, all_src, all_len):
            keys = _str_keys(keys)
            dsts, srcs, lens = list(dsts), list(srcs), list(lens)
            if not len(keys) == len(dsts) == len(srcs) == len(lens):
                plans.append([_INVALID_PARAMS] * len(keys))
                continue
            per_key = []
            for key, d, s, n in zip(keys, dsts, srcs, lens):
                d, s, n = _ints(d, "offsets"), _ints(s, "offsets"), _ints(n, "sizes")
                if not len(d) == len(s) == len(n):
                    per_key.append(_INVALID_PARAMS)
                    continue
                per_key.append((key, list(zip(d, s, n))))
                wanted.append(key)
            plans.append(per_key)
        if self._store is None:
            log.error("get_into_ranges: the store is not set up")
            return [[[_INVALID_PARAMS] * (len(p[1]) if isinstance(p, tuple) else 1)
                     for p in per_key] for per_key in plans]
        unique = list(dict.fromkeys(wanted))
        objects = {}
        if unique:
            try:
                got = self._store.get_batch(unique)
            except fs.StoreBatchError as e:
                got = e.results
            except fs.StoreError as e:
                got = [e] * len(unique)
            objects = dict(zip(unique, got))
        results = []
        for ptr, per_key in zip(ptrs, plans):
            region = self._store.registered_region(ptr)
            buf_results = []
            for p in per_key:
                if not isinstance(p, tuple):
                    buf_results.append([p])
                    continue
                key, frags = p
                data = objects.get(key)
                out = []
                for dst, src, n in frags:
                    out.append(self._copy_range(ptr, region, data, dst, src, n))
                buf_results.append(out)
            results.append(buf_results)
        return results

    @staticmethod
    def _copy_range(ptr, region, data, dst, src, n):
        if isinstance(data, fs.StoreError):
            return data.code
        if region is None:
            log.error("get_into_ranges: buffer %#x is not registered", ptr)
            return _INVALID_PARAMS
        start, length = region
        if dst < 0 or src < 0 or n < 0 or ptr + dst + n > start + length:
            log.error("get_into_ranges: destination range overflows the registered buffer")
            return _INVALID_PARAMS
        if src + n > len(data):
            log.error("get_into_ranges: source range [%d, +%d) exceeds the object's %d "
                      "bytes", src, n, len(data))
            return _INVALID_PARAMS
        if n:
            ctypes.memmove(ptr + dst, data[src:src + n], n)
        return n

    # --- metadata -------------------------------------------------------------------
    def is_exist(self, key):
        """1 exists, 0 does not, negative on failure."""
        return self._call("is_exist", lambda s: int(s.exists(_key(key))))

    def batch_is_exist(self, keys):
        keys = _str_keys(keys)
        return self._batch("batch_is_exist", len(keys), lambda s: s.batch_exists(keys), int)

    def get_size(self, key):
        """Size in bytes, or a negative error number."""
        return self._call("get_size", lambda s: s.get_size(_key(key)))

    def remove(self, key, force=False):
        return self._call("remove", lambda s: (s.remove(_key(key), force=bool(force)), _OK)[1])

    def batch_remove(self, keys, force=False):
        keys = _str_keys(keys)
        return self._batch("batch_remove", len(keys),
                           lambda s: s.batch_remove(keys, force=bool(force)))

    def remove_by_regex(self, regex_pattern, force=False):
        """Number removed, or a negative error number."""
        if not isinstance(regex_pattern, str):
            raise TypeError("regex_pattern must be str")
        return self._call("remove_by_regex",
                          lambda s: s.remove_by_regex(regex_pattern, force=bool(force)))

    def remove_all(self, force=False):
        """Number removed, or a negative error number."""
        return self._call("remove_all", lambda s: s.remove_all(force=bool(force)))

    def get_replica_desc(self, key):
        """[ReplicaDescriptor]; [] when missing or on failure."""
        return self._call("get_replica_desc", lambda s: [
            ReplicaDescriptor(r, self._protocol) for r in s.get_replicas(_key(key))],
            failure=[])

    def batch_get_replica_desc(self, keys):
        """{key: [ReplicaDescriptor]} of the keys found."""
        keys = _str_keys(keys)
        if self._store is None:
            return self._not_set_up("batch_get_replica_desc", {})
        try:
            results = self._store.batch_get_replicas(keys)
        except fs.StoreBatchError as e:
            results = e.results
        except fs.StoreError as e:
            log.error("batch_get_replica_desc: %s", e)
            return {}
        out = {}
        for key, r in zip(keys, results):
            if isinstance(r, fs.StoreError):
                self._log_item("batch_get_replica_desc", r)
                continue  # the reference's map holds the keys it found
            out[key] = [ReplicaDescriptor(x, self._protocol) for x in r]
        return out

    def get_store(self):
        """Ferry extension: the underlying ferry.store.Store (None before setup)."""
        return self._store
