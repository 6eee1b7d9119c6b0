"""Time syscalls forwarded to the host clock (they are per-call cheap; the vDSO is the fast path)."""
from __future__ import annotations

import errno

from .args import buf_in, buf_out
from .dispatch import syscall
from .host import host_syscall
from .numbers import NUMBERS as NR
from .fs import _interruptible


@syscall("clock_gettime")
def sys_clock_gettime(ctx, clock: int, tp: int) -> int:
    return host_syscall(NR["clock_gettime"], clock, buf_out(ctx, tp, 16))


@syscall("clock_getres")
def sys_clock_getres(ctx, clock: int, tp: int) -> int:
    return host_syscall(NR["clock_getres"], clock, buf_out(ctx, tp, 16) if tp else 0)


@syscall("gettimeofday")
def sys_gettimeofday(ctx, tv: int, tz: int) -> int:
    return host_syscall(NR["gettimeofday"], buf_out(ctx, tv, 16) if tv else 0, buf_out(ctx, tz, 8) if tz else 0)


@syscall("time")
def sys_time(ctx, tloc: int) -> int:
    return host_syscall(NR["time"], buf_out(ctx, tloc, 8) if tloc else 0)


@syscall("nanosleep")
def sys_nanosleep(ctx, req: int, rem: int) -> int:
    return _interruptible(ctx, NR["nanosleep"], buf_in(ctx, req, 16), buf_out(ctx, rem, 16) if rem else 0)


@syscall("clock_nanosleep")
def sys_clock_nanosleep(ctx, clock: int, flags: int, req: int, rem: int) -> int:
    return _interruptible(ctx, NR["clock_nanosleep"], clock, flags, buf_in(ctx, req, 16),
                          buf_out(ctx, rem, 16) if rem else 0)


@syscall("clock_settime", "settimeofday")
def sys_clock_settime(ctx) -> int:
    return -errno.EPERM
