"""ferry.TransferEngine: the Pythonic wrapper of the C++ engine (ferry._ferry.Engine).

Memory is given either as an object with the buffer protocol (numpy arrays, bytearray,
memoryview, mmap; C-contiguous), an object with data_ptr()/numel()/element_size() (a CPU
torch tensor), or a raw int address plus a length. Registered objects are kept alive by
the engine until unregistered or the engine is closed.

Segments (peers) are given by name ("host:port") or by the int id open_segment returned.
Timeouts are in seconds; None means the engine's default (30 s unless set).
Thread safety: every method may be called from several threads; blocking calls release
the GIL and sleep rather than spin.
"""

import bisect
import os
import threading
from collections import namedtuple

from ferry import _ferry

READ = 0   # peer -> local
WRITE = 1  # local -> peer

# op: READ or WRITE; local: buffer object or int address; segment: name or id;
# remote: int address in the peer; length: bytes (None: the local buffer's size).
Request = namedtuple("Request", "op local segment remote length", defaults=(None,))
# state: "pending" | "done" | "failed"; error: a FerryError when failed, else None.
TransferStatus = namedtuple("TransferStatus", "state bytes_done error")
BufferInfo = namedtuple("BufferInfo", "addr length location remote")
# sender: segment name of the sender; message: bytes.
Notification = namedtuple("Notification", "sender message")

_STATES = ("pending", "done", "failed")


def _error_for(code, message):
    """A FerryError subclass instance for a C++ status code (int) and message."""
    name = _ferry.STATUS_CODE_NAMES.get(code, "UNKNOWN")
    err = _ferry.ERRORS_BY_CODE.get(code, _ferry.FerryError)(f"{name}: {message}")
    err.code, err.status_code, err.message = name, code, message
    return err


def address_of(obj, length=None):
    """(addr, length, keepalive) for a buffer object, a tensor-like or an int address.

    Raises InvalidArgumentError for a non-contiguous buffer, an int without a length, or a
    length larger than the object.
    """
    if isinstance(obj, int):
        if length is None:
            raise _ferry.InvalidArgumentError("a raw address needs a length")
        return obj, int(length), None
    if hasattr(obj, "data_ptr") and hasattr(obj, "element_size"):  # torch.Tensor
        if hasattr(obj, "is_contiguous") and not obj.is_contiguous():
            raise _ferry.InvalidArgumentError("tensor is not contiguous")
        addr, size = obj.data_ptr(), obj.numel() * obj.element_size()
    else:
        addr, size, _readonly = _ferry.buffer_info(obj)
    if length is None:
        length = size
    if length > size:
        raise _ferry.InvalidArgumentError(f"length {length} exceeds the buffer's {size} bytes")
    return addr, int(length), obj


def _seconds_to_ms(timeout):
    return 0 if timeout is None else max(1, int(timeout * 1000))


class TransferEngine:
    """One Ferry segment: listens on local_name ("host:port", port 0 picks one).

    metadata: "P2PHANDSHAKE", "http://host:port/path" or "etcd://host:port".
    transport: "auto" (shm for same-host peers, tcp otherwise), "tcp", "shm", "fault:tcp",
    "ucx" (a build with UCX: ferry.HAVE_UCX; see docs/ucx.md).
    device_name: NICs the transports may use, comma separated ("mlx5_0:1,mlx5_1:1";
    ucx: UCX_NET_DEVICES); "" for all.
    secret: the deployment's shared secret (None: the FERRY_KV_SECRET variable, else none);
    peers must use the same one.
    Raises FerryError (AlreadyExistsError if the port is taken, UnavailableError if the
    metadata service cannot be reached, InvalidArgumentError for bad options).
    """

    def __init__(self, local_name="127.0.0.1:0", metadata="P2PHANDSHAKE", transport="auto",
                 secret=None, *, transport_params="", advertised_name="",
                 connections_per_peer=2, slice_size=4 << 20, timeout=30.0,
                 connect_timeout=5.0, device_name=""):
        if secret is None:
            secret = os.environ.get("FERRY_KV_SECRET", "")
        self._engine = _ferry.Engine(local_name, metadata, transport, secret,
                                     transport_params, advertised_name, connections_per_peer,
                                     slice_size, _seconds_to_ms(timeout),
                                     _seconds_to_ms(connect_timeout), device_name or "")
        self._lock = threading.Lock()
        self._registered = {}  # addr -> (length, keepalive object); GUARDED_BY(_lock)
        self._starts = []      # sorted keys of _registered; GUARDED_BY(_lock)
        self._batch_keep = {}  # batch -> buffer objects its requests use; GUARDED_BY(_lock)

    # --- lifetime -------------------------------------------------------------------
    def close(self):
        """Stops serving, fails pending requests, drops registrations. Idempotent."""
        self._engine.close()
        with self._lock:
            self._registered.clear()
            self._starts = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def local_name(self):
        """"host:port" under which peers reach this engine."""
        return self._engine.local_name

    @property
    def rpc_port(self):
        return self._engine.rpc_port

    # --- memory ---------------------------------------------------------------------
    def register(self, buffer_or_addr, length=None, location="cpu", remote=True):
        """Registers memory; returns its address. A read-only buffer may be registered only
        with remote=False. Raises InvalidArgumentError (overlap, empty, non-contiguous)."""
        addr, length, keep = address_of(buffer_or_addr, length)
        if remote and keep is not None and not hasattr(keep, "data_ptr") and \
                _ferry.buffer_info(keep)[2]:
            raise _ferry.InvalidArgumentError(
                "read-only buffer: peers could write into it; pass remote=False")
        self._engine.register_memory([(addr, length, location, bool(remote))])
        with self._lock:
            self._registered[addr] = (length, keep)
            self._starts = sorted(self._registered)
        return addr

    def unregister(self, buffer_or_addr):
        """Unregisters by start address (or the object registered). Raises NotFoundError."""
        addr = buffer_or_addr if isinstance(buffer_or_addr, int) else \
            address_of(buffer_or_addr)[0]
        self._engine.unregister_memory([addr])
        with self._lock:
            self._registered.pop(addr, None)
            self._starts = sorted(self._registered)

    def allocate_managed(self, length):
        """Allocates `length` bytes of zeroed memory the engine owns and registers it;
        returns its address. A transport that allocates its own memory provides it (ucx:
        UCX shared memory, which same-host ucx peers write with a memcpy). Free it with
        free_managed. Raises InvalidArgumentError (length 0), ResourceExhaustedError."""
        addr = self._engine.allocate_managed_buffer(length)
        with self._lock:
            self._registered[addr] = (length, None)
            self._starts = sorted(self._registered)
        return addr

    def free_managed(self, addr):
        """Unregisters and frees memory of allocate_managed. Raises NotFoundError."""
        self._engine.free_managed_buffer(addr)
        with self._lock:
            self._registered.pop(addr, None)
            self._starts = sorted(self._registered)

    def registered(self):
        """[(addr, length)] of the memory registered through this object."""
        with self._lock:
            return sorted((a, n) for a, (n, _) in self._registered.items())

    def is_registered(self, addr, length):
        """Whether [addr, addr + length) lies inside one registered buffer."""
        with self._lock:
            i = bisect.bisect_right(self._starts, addr) - 1
            if i < 0:
                return False
            start = self._starts[i]
            return addr + length <= start + self._registered[start][0]

    # --- segments -------------------------------------------------------------------
    def open_segment(self, name):
        """Segment id of peer `name` ("host:port"); cached. Raises NotFoundError,
        UnavailableError or DeadlineExceededError."""
        return self._engine.open_segment(name)

    def _segment(self, segment):
        return self.open_segment(segment) if isinstance(segment, str) else segment

    def close_segment(self, segment):
        self._engine.close_segment(self._segment(segment))

    def segment_buffers(self, segment, refresh=False):
        """[BufferInfo] the peer publishes (sorted by address); refresh asks it again."""
        return [BufferInfo(*b) for b in self._engine.segment_buffers(self._segment(segment),
                                                                     refresh)]

    def probe(self, segment, timeout=None):
        """Asks the peer itself whether it is alive and which process it is; returns the
        round trip in seconds. A peer that restarted gets its segment refreshed. Raises
        UnavailableError (gone), DeadlineExceededError (no answer within timeout),
        FailedPreconditionError (another engine answers at that address)."""
        return self._engine.probe(self._segment(segment), _seconds_to_ms(timeout))

    # --- batches --------------------------------------------------------------------
    def _requests(self, requests, keep=None):
        """C++ request tuples; buffer objects are appended to `keep` (to outlive the batch)."""
        out = []
        for r in requests:
            r = r if isinstance(r, Request) else Request(*r)
            addr, length, _ = address_of(r.local, r.length)
            # Raw addresses are trusted only inside registered memory: a wrong one must
            # fail here, not fault in the copy. Buffer objects are valid by construction.
            if isinstance(r.local, int) and length and not self.is_registered(addr, length):
                raise _ferry.InvalidArgumentError(
                    f"local address [{addr:#x}, +{length}) is not inside memory registered "
                    "with this engine: register it, or pass the buffer object itself")
            if keep is not None and not isinstance(r.local, int):
                keep.append(r.local)
            out.append((int(r.op), addr, self._segment(r.segment), int(r.remote), length))
        return out

    def allocate_batch(self, capacity):
        """A batch id for up to `capacity` requests."""
        return self._engine.allocate_batch(capacity)

    def submit(self, batch, requests, timeout=None, notify=None):
        """Starts `requests` (Request or tuples) in `batch`; returns at once. `notify`
        (bytes/str) reaches each target after this call's writes to it are done.
        Raises InvalidArgumentError (bad range, unknown batch/segment, full batch)."""
        keep = []
        self._engine.submit(batch, self._requests(requests, keep), _seconds_to_ms(timeout),
                            notify)
        if keep:
            with self._lock:
                self._batch_keep.setdefault(batch, []).extend(keep)

    def poll(self, batch, index=None):
        """TransferStatus of the whole batch, or of its index-th request."""
        if index is None:
            state, done, code, msg = self._engine.batch_status(batch)
        else:
            state, done, code, msg = self._engine.transfer_status(batch, index)
        return TransferStatus(_STATES[state], done, _error_for(code, msg) if state == 2 else None)

    def wait(self, batch, timeout=None):
        """Blocks (sleeping, GIL released) until the batch ends. Raises the first failure,
        or DeadlineExceededError if still pending after `timeout` seconds (None: until it
        ends; every request ends by its own deadline)."""
        self._engine.wait(batch, _seconds_to_ms(timeout) if timeout is not None else 3_600_000)

    def free(self, batch):
        """Releases a batch. Raises FailedPreconditionError while requests are pending."""
        self._engine.free_batch(batch)
        with self._lock:
            self._batch_keep.pop(batch, None)

    # --- sync helpers ---------------------------------------------------------------
    def transfer_sync(self, requests, timeout=None, notify=None):
        """Runs requests to completion. Raises the first failure."""
        self._engine.transfer_sync(self._requests(requests), _seconds_to_ms(timeout), notify)

    def write(self, segment, local, remote_addr, length=None, timeout=None, notify=None):
        """Copies local memory into the peer at remote_addr."""
        self.transfer_sync([Request(WRITE, local, segment, remote_addr, length)], timeout,
                           notify)

    def read(self, segment, local, remote_addr, length=None, timeout=None):
        """Copies the peer's memory at remote_addr into local memory."""
        self.transfer_sync([Request(READ, local, segment, remote_addr, length)], timeout)

    # --- notifications and counters -------------------------------------------------
    def send_notification(self, segment, message):
        self._engine.send_notification(self._segment(segment), message)

    def take_notifications(self):
        """[Notification(sender, message: bytes)] received and not yet taken, oldest first.

        The engine keeps at most 4096 notifications / 64 MiB between calls and drops the
        oldest beyond that (counted in counters()["notifications_dropped"]).
        """
        return [Notification(s, m) for s, m in self._engine.take_notifications()]

    def counters(self):
        """Dict of monotonic counters (bytes_written, bytes_read, bytes_received,
        bytes_served, requests_done, requests_failed, inbound_rejected,
        notifications_dropped, transport_fallbacks)."""
        return self._engine.counters()
