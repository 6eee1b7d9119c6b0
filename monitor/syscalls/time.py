"""Time syscalls forwarded to the host clock (they are per-call cheap; the vDSO is the fast path), and the sleeps.

A relative sleep cut short by a signal returns -ERESTART_RESTARTBLOCK with the time left in `rem`, as Linux's
hrtimer_nanosleep: a handler makes it EINTR whatever SA_RESTART says; with no handler it goes on until its
original expiry through restart_syscall (the thread's restart_block). An absolute sleep returns -ERESTARTNOHAND.
"""
from __future__ import annotations

import errno
import struct
import time
from typing import TYPE_CHECKING

from ..kvm.abi import ffi
from ..signals.delivery import ERESTART_RESTARTBLOCK, ERESTARTNOHAND
from .args import addr_of, buf_in, buf_out
from .dispatch import syscall
from .host import blocking_host_syscall, host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

CLOCK_MONOTONIC, TIMER_ABSTIME = 1, 1
TIMESPEC = struct.Struct("<qq")


@syscall("clock_gettime")
def sys_clock_gettime(ctx: VcpuThread, clock: int, tp: int) -> int:
    return host_syscall(NR["clock_gettime"], clock, buf_out(ctx, tp, 16))


@syscall("clock_getres")
def sys_clock_getres(ctx: VcpuThread, clock: int, tp: int) -> int:
    return host_syscall(NR["clock_getres"], clock, buf_out(ctx, tp, 16) if tp else 0)


@syscall("gettimeofday")
def sys_gettimeofday(ctx: VcpuThread, tv: int, tz: int) -> int:
    return host_syscall(NR["gettimeofday"], buf_out(ctx, tv, 16) if tv else 0, buf_out(ctx, tz, 8) if tz else 0)


@syscall("time")
def sys_time(ctx: VcpuThread, tloc: int) -> int:
    return host_syscall(NR["time"], buf_out(ctx, tloc, 8) if tloc else 0)


@syscall("nanosleep")
def sys_nanosleep(ctx: VcpuThread, req: int, rem: int) -> int:
    """Linux's nanosleep sleeps on CLOCK_MONOTONIC."""
    return _relative_sleep(ctx, CLOCK_MONOTONIC, req, rem)


@syscall("clock_nanosleep")
def sys_clock_nanosleep(ctx: VcpuThread, clock: int, flags: int, req: int, rem: int) -> int:
    if flags & TIMER_ABSTIME:
        return blocking_host_syscall(ctx, NR["clock_nanosleep"], clock, flags, buf_in(ctx, req, 16), 0,
                                     restart=ERESTARTNOHAND)
    return _relative_sleep(ctx, clock, req, rem)


def _relative_sleep(ctx: VcpuThread, clock: int, req: int, rem: int) -> int:
    """The host sleeps on a km copy of `req` that it updates with the time left, so a sleep resumed after a
    debugger's pause goes on with what is left."""
    if rem:
        buf_out(ctx, rem, 16)
    left = ffi.new("int64_t[2]", TIMESPEC.unpack(ctx.mem.read(req, 16)))
    result = blocking_host_syscall(ctx, NR["clock_nanosleep"], clock, 0, addr_of(left), addr_of(left),
                                   restart=ERESTART_RESTARTBLOCK)
    if result == -ERESTART_RESTARTBLOCK:
        _interrupted_sleep(ctx, clock, time.clock_gettime_ns(clock) + left[0] * 1_000_000_000 + left[1], rem)
    return result


def _interrupted_sleep(ctx: VcpuThread, clock: int, deadline_ns: int, rem: int) -> None:
    """hrtimer_nanosleep's way out: `rem` gets the time left; restart_syscall sleeps until the same expiry."""
    left_ns = max(0, deadline_ns - time.clock_gettime_ns(clock))
    if rem:
        ctx.mem.write(rem, TIMESPEC.pack(*divmod(left_ns, 1_000_000_000)))
    ctx.restart_block = lambda thread: _sleep_until(thread, clock, deadline_ns, rem)


def _sleep_until(ctx: VcpuThread, clock: int, deadline_ns: int, rem: int) -> int:
    """hrtimer_nanosleep_restart: the rest of a relative sleep, as an absolute one."""
    until = ffi.new("int64_t[2]", divmod(deadline_ns, 1_000_000_000))
    result = blocking_host_syscall(ctx, NR["clock_nanosleep"], clock, TIMER_ABSTIME, addr_of(until), 0,
                                   restart=ERESTART_RESTARTBLOCK)
    if result == -ERESTART_RESTARTBLOCK:
        _interrupted_sleep(ctx, clock, deadline_ns, rem)
    return result


@syscall("clock_settime", "settimeofday")
def sys_clock_settime(ctx: VcpuThread) -> int:
    return -errno.EPERM
