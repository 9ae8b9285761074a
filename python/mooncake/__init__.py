"""Mooncake-compatible facade over Ferry: `from mooncake.engine import TransferEngine` and
`from mooncake.store import MooncakeDistributedStore`.

See docs/python.md for the differences from the reference implementation.
"""
