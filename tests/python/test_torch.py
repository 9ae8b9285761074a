"""CPU torch tensors registered by data_ptr(), where Debian's python3-torch imports."""

import pytest

from conftest import Peer

torch = pytest.importorskip(
    "torch", reason="torch does not import here (install Debian's python3-torch to run)")


@pytest.mark.parametrize("transport", ["tcp", "shm"])
def test_tensor_by_data_ptr(transport):
    from mooncake.engine import TransferEngine
    peer = Peer("ferry", transport)
    try:
        e = TransferEngine()
        assert e.initialize("127.0.0.1", "P2PHANDSHAKE", transport, "") == 0
        t = torch.arange(1024, dtype=torch.float32)
        n = t.numel() * t.element_size()
        assert e.register_memory(t.data_ptr(), n) == 0
        assert e.transfer_sync_write(peer.name, t.data_ptr(), peer.addr, n) == 0
        back = torch.zeros_like(t)
        assert e.register_memory(back.data_ptr(), n) == 0
        assert e.transfer_sync_read(peer.name, back.data_ptr(), peer.addr, n) == 0
        assert torch.equal(back, t)
        e.get_engine().close()
    finally:
        peer.stop()
