"""Forwarding a syscall to the host kernel through libc's syscall(2) (cffi releases the GIL and does not retry
on EINTR), with guest pointers already turned into host addresses by the caller."""
from __future__ import annotations

from ..kvm.abi import ffi, libc

_MASK = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value >> 63 else value


def host_syscall(nr: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """The host's result, or -errno."""
    result = libc.syscall(nr, _signed(a0), _signed(a1), _signed(a2), _signed(a3), _signed(a4), _signed(a5))
    return -ffi.errno if result == -1 else result
