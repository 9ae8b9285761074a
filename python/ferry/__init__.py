"""Ferry: move bytes between registered memory of processes (Python API).

    import numpy as np, ferry
    with ferry.TransferEngine("127.0.0.1:0", transport="tcp") as engine:
        buf = np.zeros(1 << 20, dtype=np.uint8)
        engine.register(buf)                      # peers may now read/write it
        engine.write("127.0.0.1:17000", buf, remote_addr)   # local -> peer
        engine.read("127.0.0.1:17000", buf, remote_addr)    # peer -> local

Errors raise ferry.FerryError (a RuntimeError) or one of its subclasses per status code
(ferry.NotFoundError, ferry.InvalidArgumentError, ferry.UnavailableError, ...), each with
.code, .status_code and .message from the C++ status. See docs/python.md.
"""

from ferry._ferry import (
    AbortedError,
    AlreadyExistsError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    FerryError,
    HAVE_UCX,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
)
from ferry.engine import (
    READ,
    WRITE,
    BufferInfo,
    Notification,
    Request,
    TransferEngine,
    TransferStatus,
    address_of,
)

__all__ = [
    "READ", "WRITE", "BufferInfo", "Notification", "Request", "TransferEngine",
    "TransferStatus", "address_of", "FerryError", "AbortedError", "AlreadyExistsError",
    "DataLossError", "DeadlineExceededError", "FailedPreconditionError", "InternalError",
    "InvalidArgumentError", "NotFoundError", "OutOfRangeError", "PermissionDeniedError",
    "ResourceExhaustedError", "UnavailableError", "UnimplementedError", "HAVE_UCX",
]
