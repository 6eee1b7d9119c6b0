"""Forwarding a syscall to the host kernel through libc's syscall(2) (cffi releases the GIL and does not retry
on EINTR), with guest pointers already turned into host addresses by the caller; and the one way to make a host
call that may block (blocking_host_syscall), used by every family whose calls can wait."""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..kvm.abi import ffi, libc
from ..signals.delivery import ERESTARTNOINTR, ERESTARTSYS
from .dispatch import s64

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

def host_syscall(nr: int, a0: int = 0, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """The host's result, or -errno."""
    result = libc.syscall(nr, s64(a0), s64(a1), s64(a2), s64(a3), s64(a4), s64(a5))
    return -ffi.errno if result == -1 else result


def blocking_host_syscall(ctx: VcpuThread, nr: int, *args: int, restart: int = ERESTARTSYS) -> int:
    """A host call that may block, as the kernel sleeps interruptibly: after a kick (the host call then fails
    with EINTR) it is made again, unseen by the payload, unless interruption() says to leave it."""
    ctx.waits_interruptibly(restart)
    while True:
        result = host_syscall(nr, *args)
        if result != -errno.EINTR:
            return result
        leave = interruption(ctx, restart)
        if leave is not None:
            return leave


def interruption(ctx: VcpuThread, restart: int = ERESTARTSYS) -> int | None:
    """What a blocking call does after a kick: None to wait again (after a debugger's pause, parked in place);
    else the code to return: -`restart`, the kernel's code for this call (signals.ERESTARTSYS...), for a guest
    signal the thread can take or the end of the process, which signals.deliver turns into EINTR or a restart;
    -ERESTARTNOINTR when a snapshot freezes the thread, so that the call is made again once it goes on."""
    while True:
        if ctx.proc.pending_signals_for(ctx) or ctx.exit_requested:
            return -restart
        if ctx.freezing:
            return -ERESTARTNOINTR
        if not ctx.pause_requested:
            return None
        ctx.park()
