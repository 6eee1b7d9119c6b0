"""Bounce buffers: a guest buffer that spans VMAs whose backings are not adjacent in host memory (a heap grown by
brk in steps, neighbouring mmaps) cannot be handed to the host kernel in place; it gets a host copy instead,
written back to the guest when the handler returns (dispatch() calls flush_bounces)."""
from __future__ import annotations

import threading
from typing import Any, TYPE_CHECKING

from ..kvm.abi import ffi

if TYPE_CHECKING:
    from ..memory.guest import GuestMemory


class _Pending(threading.local):
    """Per vCPU thread: the bounce buffers of the syscall being served, as (copy, [(host_addr, length)] to write
    back to, or None for a buffer the host only reads)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, list[tuple[int, int]] | None]] = []    # (cffi char[] copy, pieces)


bounces = _Pending()


def bounce(mem: GuestMemory, gva: int, size: int, write: bool) -> int:
    """Host address of a copy of the guest range; GuestFault (from mem.pieces) if any byte is inaccessible."""
    pieces = mem.pieces(gva, size, write)
    copy = ffi.new("char[]", size)
    offset = 0
    for host, length in pieces:          # outputs start as the guest's bytes too: a short write keeps the rest
        ffi.memmove(copy + offset, ffi.cast("char *", host), length)
        offset += length
    bounces.pending.append((copy, pieces if write else None))
    return int(ffi.cast("uintptr_t", copy))


def flush_bounces() -> None:
    """Copy what the host wrote into the bounce buffers back to the guest; drop them all."""
    pending = bounces.pending
    bounces.pending = []
    for copy, pieces in pending:
        offset = 0
        for host, length in pieces or ():
            ffi.memmove(ffi.cast("char *", host), copy + offset, length)
            offset += length
