"""Drop-in `mooncake.engine.TransferEngine` backed by Ferry.

Same method names, argument order and return conventions as Mooncake's pybind module:
ints are 0 on success and negative on failure (memory registration uses the reference's
codes: -7 overlapping, -3 not registered, -1 anything else), async batch calls and
transfer_submit_write return the batch id 0 on failure, transfer_check_status returns
1 done / 0 pending / -1 failed / -2 timed out. Failures are
logged on the "mooncake.engine" logger with the Ferry status message; nothing raises
except programming errors (wrong argument types).

Differences from the reference are listed in docs/python.md.
"""

import ctypes
import enum
import logging
import os
import threading

import ferry

log = logging.getLogger("mooncake.engine")

SUPPORT_CUDA = False
SUPPORT_EFA = False
SUPPORT_HIP = False
SUPPORT_MNNVL = False
SUPPORT_INTRA_NVLINK = False


class TransferOpcode(enum.IntEnum):
    Read = 0
    Write = 1
    READ = 0   # alias spelled as in newer Mooncake releases
    WRITE = 1


class TransferNotify:
    """A notification: `name` and `msg` strings, delivered to the target's get_notifies()."""

    def __init__(self, name="", msg=""):
        self.name, self.msg = name, msg

    def __repr__(self):
        return f"TransferNotify(name={self.name!r}, msg={self.msg!r})"


# "rdma": the engine's shm, ucx (over the host's RDMA NICs, where it has them), tcp.
_PROTOCOLS = {"tcp": "tcp", "shm": "shm", "ucx": "ucx", "rdma": "rdma", "auto": "auto",
              "": "auto"}


# Mooncake's error.h codes that its registration calls pass through to Python.
ERR_INVALID_ARGUMENT = -1
ERR_ADDRESS_NOT_REGISTERED = -3
ERR_ADDRESS_OVERLAPPED = -7


def _register_failure(error):
    if error is not None and "overlap" in str(error):
        return ERR_ADDRESS_OVERLAPPED
    return ERR_INVALID_ARGUMENT


def _unregister_failure(error):
    if isinstance(error, ferry.NotFoundError):
        return ERR_ADDRESS_NOT_REGISTERED
    return ERR_INVALID_ARGUMENT


def _metadata_url(metadata_server, metadata_type=None):
    """Ferry's metadata string for Mooncake's (metadata_server, metadata_type)."""
    server = metadata_server.strip()
    if server.upper() == "P2PHANDSHAKE" or (metadata_type or "").lower() == "p2p":
        return "P2PHANDSHAKE"
    if "://" in server:
        scheme = server.split("://", 1)[0].lower()
        if scheme not in ("http", "etcd"):
            raise ferry.UnimplementedError(f"metadata scheme {scheme!r} is not supported "
                                           "(use P2PHANDSHAKE, http:// or etcd://)")
        return server
    kind = (metadata_type or "etcd").lower()
    if kind not in ("etcd", "http"):
        raise ferry.UnimplementedError(f"metadata type {kind!r} is not supported")
    return f"{kind}://{server}"


def _local_name(local_hostname):
    """"host:port" to listen on; a bare host gets port 0 (a free port)."""
    host = local_hostname.strip()
    if host.startswith("["):  # [v6]:port
        return host if "]:" in host else host + ":0"
    return host if ":" in host else host + ":0"


class TransferEngine:
    """Call initialize() / initialize_ext() before anything else."""

    def __init__(self):
        self._engine = None
        self._lock = threading.Lock()
        self._managed = {}   # addr -> length of allocate_managed_buffer; GUARDED_BY(_lock)
        self._timeout = float(os.environ.get("MC_TRANSFER_TIMEOUT", "30"))

    # --- initialisation -------------------------------------------------------------
    def initialize(self, local_hostname, metadata_server, protocol, device_name):
        return self.initialize_ext(local_hostname, metadata_server, protocol, device_name,
                                   None)

    def initialize_ext(self, local_hostname, metadata_server, protocol, device_name,
                       metadata_type):
        if self._engine is not None:
            log.error("initialize: the engine is already initialized")
            return -1
        proto = (protocol or "").lower()
        if proto == "ucx" and not ferry.HAVE_UCX:
            log.error("initialize: protocol 'ucx' needs a Ferry built with UCX "
                      "(libucx-dev; see docs/ucx.md)")
            return -1
        if proto not in _PROTOCOLS:
            log.error("initialize: protocol %r is not supported (tcp, shm, ucx, rdma->auto)",
                      protocol)
            return -1
        try:
            self._engine = ferry.TransferEngine(
                _local_name(local_hostname), _metadata_url(metadata_server, metadata_type),
                _PROTOCOLS[proto], timeout=self._timeout, device_name=device_name or "")
        except ferry.FerryError as e:
            log.error("initialize: %s", e)
            return -1
        return 0

    def get_rpc_port(self):
        return self._engine.rpc_port if self._engine else -1

    def get_local_session_id(self):
        """Ferry extension: the "host:port" peers use as target_hostname."""
        return self._engine.local_name if self._engine else ""

    def get_local_topology(self, device_name=None):
        return "{}"

    def _call(self, what, fn, failure=-1):
        """Runs fn(); returns its result, or `failure` after logging a FerryError.
        `failure` may be a function of the error (None when not initialized)."""
        if self._engine is None:
            log.error("%s: the engine is not initialized", what)
            return failure(None) if callable(failure) else failure
        try:
            return fn()
        except ferry.FerryError as e:
            log.error("%s: %s", what, e)
            return failure(e) if callable(failure) else failure

    # --- memory ---------------------------------------------------------------------
    def register_memory(self, buffer_addr, capacity, location="*"):
        loc = "cpu" if location in ("*", "", None) else location

        def run():
            self._engine.register(buffer_addr, capacity, loc)
            return 0
        return self._call("register_memory", run, failure=_register_failure)

    def unregister_memory(self, buffer_addr):
        def run():
            self._engine.unregister(buffer_addr)
            return 0
        return self._call("unregister_memory", run, failure=_unregister_failure)

    def batch_register_memory(self, buffer_addresses, capacities):
        def run():
            if len(buffer_addresses) != len(capacities):
                raise ferry.InvalidArgumentError("addresses and capacities differ in length")
            done = []
            try:
                for a, n in zip(buffer_addresses, capacities):
                    done.append(self._engine.register(a, n))
            except ferry.FerryError:
                for a in done:  # all-or-nothing, as one C++ RegisterMemory call
                    self._engine.unregister(a)
                raise
            return 0
        return self._call("batch_register_memory", run, failure=_register_failure)

    def batch_unregister_memory(self, buffer_addresses):
        def run():
            for a in buffer_addresses:
                self._engine.unregister(a)
            return 0
        return self._call("batch_unregister_memory", run, failure=_unregister_failure)

    def allocate_managed_buffer(self, length):
        """Address of `length` bytes of page-aligned, zeroed memory the engine owns and has
        registered (UCX memory when the engine runs ucx); 0 on failure."""
        def run():
            if length <= 0:
                raise ferry.InvalidArgumentError("length must be positive")
            addr = self._engine.allocate_managed(length)
            with self._lock:
                self._managed[addr] = length
            return addr
        return self._call("allocate_managed_buffer", run, failure=0)

    def free_managed_buffer(self, buffer_addr, length):
        with self._lock:
            known = buffer_addr in self._managed
        if not known:
            log.error("free_managed_buffer: %#x is not a managed buffer", buffer_addr)
            return -1

        def run():
            self._engine.free_managed(buffer_addr)
            with self._lock:
                self._managed.pop(buffer_addr, None)
            return 0
        return self._call("free_managed_buffer", run)

    def write_bytes_to_buffer(self, dest_address, src_ptr, length):
        """Copies `length` bytes of `src_ptr` (bytes-like) into registered local memory."""
        def run():
            data = memoryview(src_ptr).cast("B")
            if length > len(data):
                raise ferry.InvalidArgumentError(f"length {length} exceeds the {len(data)} "
                                                 "bytes given")
            if not self._engine.is_registered(dest_address, length):
                raise ferry.InvalidArgumentError(f"[{dest_address:#x}, +{length}) is not "
                                                 "inside memory registered with this engine")
            ctypes.memmove(dest_address, bytes(data[:length]), length)
            return 0
        return self._call("write_bytes_to_buffer", run)

    def read_bytes_from_buffer(self, source_address, length):
        """`length` bytes of registered local memory; b"" on failure."""
        def run():
            if length < 0 or not self._engine.is_registered(source_address, length):
                raise ferry.InvalidArgumentError(f"[{source_address:#x}, +{length}) is not "
                                                 "inside memory registered with this engine")
            return ctypes.string_at(source_address, length)
        return self._call("read_bytes_from_buffer", run, failure=b"")

    # --- transfers ------------------------------------------------------------------
    def _reqs(self, opcode, target, buffers, peers, lengths):
        if not (len(buffers) == len(peers) == len(lengths)):
            raise ferry.InvalidArgumentError("buffers, peer addresses and lengths differ "
                                             "in length")
        seg = self._engine.open_segment(target)
        return [ferry.Request(int(opcode), int(b), seg, int(p), int(n))
                for b, p, n in zip(buffers, peers, lengths)]

    @staticmethod
    def _notify_bytes(notify):
        if notify is None:
            return None
        return notify.name.encode() + b"\x00" + notify.msg.encode()

    def transfer_sync_write(self, target_hostname, buffer, peer_buffer_address, length,
                            transport_hint=""):
        return self.transfer_sync(target_hostname, buffer, peer_buffer_address, length,
                                  TransferOpcode.Write)

    def transfer_sync_read(self, target_hostname, buffer, peer_buffer_address, length,
                           transport_hint=""):
        return self.transfer_sync(target_hostname, buffer, peer_buffer_address, length,
                                  TransferOpcode.Read)

    def transfer_sync(self, target_hostname, buffer, peer_buffer_address, length, opcode,
                      notify=None, transport_hint=""):
        return self.batch_transfer_sync(target_hostname, [buffer], [peer_buffer_address],
                                        [length], opcode, notify)

    def batch_transfer_sync_write(self, target_hostname, buffers, peer_buffer_addresses,
                                  lengths, transport_hint=""):
        return self.batch_transfer_sync(target_hostname, buffers, peer_buffer_addresses,
                                        lengths, TransferOpcode.Write)

    def batch_transfer_sync_read(self, target_hostname, buffers, peer_buffer_addresses,
                                 lengths, transport_hint=""):
        return self.batch_transfer_sync(target_hostname, buffers, peer_buffer_addresses,
                                        lengths, TransferOpcode.Read)

    def batch_transfer_sync(self, target_hostname, buffers, peer_buffer_addresses, lengths,
                            opcode, notify=None, transport_hint=""):
        def run():
            reqs = self._reqs(opcode, target_hostname, buffers, peer_buffer_addresses, lengths)
            self._engine.transfer_sync(reqs, notify=self._notify_bytes(notify))
            return 0
        return self._call("batch_transfer_sync", run)

    def batch_transfer_async_write(self, target_hostname, buffers, peer_buffer_addresses,
                                   lengths, transport_hint=""):
        return self.batch_transfer_async(target_hostname, buffers, peer_buffer_addresses,
                                         lengths, TransferOpcode.Write)

    def batch_transfer_async_read(self, target_hostname, buffers, peer_buffer_addresses,
                                  lengths, transport_hint=""):
        return self.batch_transfer_async(target_hostname, buffers, peer_buffer_addresses,
                                         lengths, TransferOpcode.Read)

    def batch_transfer_async(self, target_hostname, buffers, peer_buffer_addresses, lengths,
                             opcode, transport_hint=""):
        """Batch id (> 0) of the started transfers; 0 on failure."""
        def run():
            reqs = self._reqs(opcode, target_hostname, buffers, peer_buffer_addresses, lengths)
            batch = self._engine.allocate_batch(max(1, len(reqs)))
            try:
                self._engine.submit(batch, reqs)
            except ferry.FerryError:
                self._engine.free(batch)
                raise
            return batch
        return self._call("batch_transfer_async", run, failure=0)

    def transfer_submit_write(self, target_hostname, buffer, peer_buffer_address, length,
                              transport_hint=""):
        """Batch id (> 0); 0 on failure, as batch_transfer_async (callers test `!= 0`)."""
        return self.batch_transfer_async(target_hostname, [buffer], [peer_buffer_address],
                                         [length], TransferOpcode.Write)

    def get_batch_transfer_status(self, batch_ids):
        """Waits for every batch, frees them all; 0 if all succeeded, -1 otherwise."""
        result = 0
        for batch in batch_ids:
            def run(batch=batch):
                try:
                    self._engine.wait(batch, timeout=self._timeout + 5)
                finally:
                    self._engine.free(batch)
                return 0
            if self._call("get_batch_transfer_status", run) != 0:
                result = -1
        return result

    def transfer_check_status(self, batch_id):
        """1 done, 0 pending, -1 failed (or unknown batch), -2 timed out. Frees the batch
        once it has ended."""
        def run():
            st = self._engine.poll(batch_id)
            if st.state == "pending":
                return 0
            self._engine.free(batch_id)
            if st.state == "done":
                return 1
            log.error("transfer_check_status: batch %d: %s", batch_id, st.error)
            return -2 if isinstance(st.error, ferry.DeadlineExceededError) else -1
        return self._call("transfer_check_status", run)

    # --- segments and notifications -------------------------------------------------
    def get_first_buffer_address(self, segment_name):
        """Lowest registered, remote-accessible address of the peer; 0 if none/unknown."""
        def run():
            bufs = [b for b in self._engine.segment_buffers(segment_name, refresh=True)
                    if b.remote]
            return bufs[0].addr if bufs else 0
        return self._call("get_first_buffer_address", run, failure=0)

    def send_probe(self, peer_server_name):
        """0 when the peer itself answers a control-plane probe now, -1 otherwise."""
        def run():
            self._engine.probe(peer_server_name)
            return 0
        return self._call("send_probe", run)

    def get_notifies(self):
        """[TransferNotify] received since the last call, oldest first."""
        def run():
            out = []
            for n in self._engine.take_notifications():
                name, sep, msg = n.message.partition(b"\x00")
                if not sep:  # sent by a plain Ferry engine: name it after the sender
                    name, msg = n.sender.encode(), n.message
                out.append(TransferNotify(name.decode(errors="replace"),
                                          msg.decode(errors="replace")))
            return out
        return self._call("get_notifies", run, failure=[])

    def get_engine(self):
        """Ferry extension point: the underlying ferry.TransferEngine (not Mooncake's
        InnerTransferEngine)."""
        return self._engine
