"""Mooncake-compatible facade over Ferry: `from mooncake.engine import TransferEngine`.

Only the transfer engine is provided (no mooncake.store). See docs/python.md for the
differences from the reference implementation.
"""
