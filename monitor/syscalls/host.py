"""Forwarding a syscall to the host kernel through libc's syscall(2) (cffi releases the GIL and does not retry
on EINTR), with guest pointers already turned into host addresses by the caller; and the one way to make a host
call that may block (blocking_host_syscall), used by every family whose calls can wait."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..kvm.abi import ffi, libc
from ..signals import ERESTARTSYS

if TYPE_CHECKING:
    from ..vcpu_loop import VcpuThread

_MASK = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value >> 63 else value


def host_syscall(nr: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """The host's result, or -errno."""
    result = libc.syscall(nr, _signed(a0), _signed(a1), _signed(a2), _signed(a3), _signed(a4), _signed(a5))
    return -ffi.errno if result == -1 else result


def blocking_host_syscall(ctx: VcpuThread, nr: int, *args: int, restart: int = ERESTARTSYS) -> int:
    """A host call that may block, as the kernel sleeps interruptibly: a kick (the host call then fails with
    EINTR) that finds no guest reason to stop, such as a debugger's pause, parks the thread and makes the call
    again, unseen by the payload; a guest signal the thread can take, or the end of the process, ends the call
    with -`restart`, the code the kernel's version of this call returns (signals.ERESTARTSYS...), which
    signals.deliver turns into EINTR or a restart."""
    while True:
        result = host_syscall(nr, *args)
        if result != -errno.EINTR:
            return result
        if ctx.proc.pending_signals_for(ctx) or ctx.exit_requested:
            return -restart
        if ctx.pause_requested:
            ctx.park()
