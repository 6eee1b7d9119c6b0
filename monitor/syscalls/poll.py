"""Readiness syscalls (poll, select, epoll) and the descriptors made to be waited on (eventfd, timerfd;
signalfd is signalfd.py's).

All of them block only the calling guest thread (the host call releases the GIL) and go through
host.blocking_host_syscall (_wait, which also applies the guest sigmask of ppoll, pselect6 and epoll_pwait*). km's own
descriptors stay invisible: poll reports them POLLNVAL without asking the host, select answers EBADF for them,
epoll refuses them.
Timeouts: the host kernel updates ppoll's and select's timeout in place, so a retry after a kick waits only for
what is left; epoll_wait restarts with its full timeout, as Linux itself does after a stop (ERESTARTNOHAND), and
so does poll (Linux continues it with what is left through restart_syscall).
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE
from .args import addr_of, buf_in, buf_out, fd_arg
from ..signals.delivery import ERESTARTNOHAND, UNBLOCKABLE
from .dispatch import s32, syscall
from .host import blocking_host_syscall, host_syscall
from .net import new_fd
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

POLLFD = struct.Struct("<ihh")          # fd, events, revents
POLLNVAL = 0x20
EPOLL_EVENT_SIZE = 12                   # struct epoll_event is packed on x86-64: u32 events, u64 data
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
INT_MAX = (1 << 31) - 1
SIGSET_SIZE = 8


def _wait(ctx: VcpuThread, nr: int, *args: int, sigmask: int = 0) -> int:
    """A readiness wait: cut short by a guest signal it returns -ERESTARTNOHAND, so EINTR even under SA_RESTART
    (signal(7)).

    With a sigmask (ppoll, pselect6, epoll_pwait*), the guest mask is replaced for the wait as Linux does; when a
    signal cuts the wait short its handler runs under that mask and the old one comes back with its sigreturn
    (mask_to_restore, as rt_sigsuspend: set_user_sigmask/restore_saved_sigmask_unless). The host call itself
    always runs with km's own mask."""
    if not sigmask:
        return blocking_host_syscall(ctx, nr, *args, restart=ERESTARTNOHAND)
    own = ctx.proc.signals.of(ctx)
    saved = own.mask
    own.mask = struct.unpack("<Q", ctx.mem.read(sigmask, SIGSET_SIZE))[0] & ~UNBLOCKABLE
    if ctx.proc.pending_signals_for(ctx):        # the new mask lets a pending signal through
        result = -ERESTARTNOHAND
    else:
        result = blocking_host_syscall(ctx, nr, *args, restart=ERESTARTNOHAND)
    if result == -ERESTARTNOHAND:
        own.mask_to_restore = saved
    else:
        own.mask = saved
    return result


# ---- poll ---------------------------------------------------------------------------------------------------
def _ppoll(ctx: VcpuThread, fds: int, nfds: int, timeout_host: int, sigmask: int = 0) -> int:
    """poll over a km copy of the pollfd array: km's own fds become -1 for the host, POLLNVAL for the payload."""
    if nfds > KM_FD_BASE:
        return -errno.EINVAL
    raw = bytearray(ctx.mem.read(fds, POLLFD.size * nfds))
    buf_out(ctx, fds, POLLFD.size * nfds)
    hidden = []
    host = ffi.new("char[]", bytes(raw) or b"\0")
    for i in range(nfds):
        if POLLFD.unpack_from(raw, POLLFD.size * i)[0] >= KM_FD_BASE:
            hidden.append(i)
            struct.pack_into("<i", ffi.buffer(host), POLLFD.size * i, -1)
    if hidden:
        zero = ffi.new("int64_t[2]")     # an invalid fd makes Linux answer at once
        timeout_host = addr_of(zero)
    result = _wait(ctx, NR["ppoll"], addr_of(host), nfds, timeout_host, 0, SIGSET_SIZE, sigmask=sigmask)
    if result < 0:
        return result
    answered = ffi.buffer(host)
    for i in range(nfds):
        raw[POLLFD.size * i + 6:POLLFD.size * i + 8] = answered[POLLFD.size * i + 6:POLLFD.size * i + 8]
    for i in hidden:
        struct.pack_into("<h", raw, POLLFD.size * i + 6, POLLNVAL)
    ctx.mem.write(fds, bytes(raw))
    return result + len(hidden)


@syscall("poll")
def sys_poll(ctx: VcpuThread, fds: int, nfds: int, timeout_ms: int) -> int:
    timeout_ms = s32(timeout_ms)
    if timeout_ms < 0:
        return _ppoll(ctx, fds, nfds, 0)
    remaining = ffi.new("int64_t[2]", [timeout_ms // 1000, timeout_ms % 1000 * 1_000_000])
    return _ppoll(ctx, fds, nfds, addr_of(remaining))


@syscall("ppoll")
def sys_ppoll(ctx: VcpuThread, fds: int, nfds: int, timeout: int, sigmask: int, sigsetsize: int) -> int:
    if sigmask and sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    return _ppoll(ctx, fds, nfds, buf_out(ctx, timeout, 16) if timeout else 0, sigmask)


# ---- select -------------------------------------------------------------------------------------------------
def _select(ctx: VcpuThread, nfds: int, sets: tuple[int, int, int], timeout_host: int, nr: int, sigmask: int) -> int:
    """select with nfds clamped below km's descriptors; a bit set for one of them is EBADF, as for a closed fd."""
    nfds = s32(nfds)
    if nfds < 0:
        return -errno.EINVAL
    size = (nfds + 63) // 64 * 8
    if nfds > KM_FD_BASE:
        for fd_set in sets:
            if fd_set and _has_bits_from(ctx.mem.read(fd_set, size), KM_FD_BASE, nfds):
                return -errno.EBADF
        nfds = KM_FD_BASE
        size = (nfds + 63) // 64 * 8
    host_sets = [buf_out(ctx, s, size) if s else 0 for s in sets]
    return _wait(ctx, nr, nfds, *host_sets, timeout_host, 0, sigmask=sigmask)


def _has_bits_from(data: bytes, first: int, end: int) -> bool:
    bits = int.from_bytes(data, "little")
    return bool(bits >> first & ((1 << (end - first)) - 1))


@syscall("select")
def sys_select(ctx: VcpuThread, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int) -> int:
    return _select(ctx, nfds, (readfds, writefds, exceptfds), buf_out(ctx, timeout, 16) if timeout else 0,
                   NR["select"], 0)


@syscall("pselect6")
def sys_pselect6(ctx: VcpuThread, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int,
                 sig: int) -> int:
    sigmask = sigsetsize = 0
    if sig:
        sigmask, sigsetsize = struct.unpack("<QQ", ctx.mem.read(sig, 16))
        if sigmask and sigsetsize != SIGSET_SIZE:
            return -errno.EINVAL
    return _select(ctx, nfds, (readfds, writefds, exceptfds), buf_out(ctx, timeout, 16) if timeout else 0,
                   NR["pselect6"], sigmask)


# ---- epoll --------------------------------------------------------------------------------------------------
@syscall("epoll_create", descriptors=True)
def sys_epoll_create(ctx: VcpuThread, size: int) -> int:
    if s32(size) <= 0:
        return -errno.EINVAL
    return new_fd(host_syscall(NR["epoll_create1"], 0))


@syscall("epoll_create1", descriptors=True)
def sys_epoll_create1(ctx: VcpuThread, flags: int) -> int:
    return new_fd(host_syscall(NR["epoll_create1"], flags))


@syscall("epoll_ctl")
def sys_epoll_ctl(ctx: VcpuThread, epfd: int, op: int, fd: int, event: int) -> int:
    host_event = buf_in(ctx, event, EPOLL_EVENT_SIZE) if s32(op) in (EPOLL_CTL_ADD, EPOLL_CTL_MOD) else 0
    return host_syscall(NR["epoll_ctl"], fd_arg(epfd), op, fd_arg(fd), host_event)


def _events_out(ctx: VcpuThread, events: int, maxevents: int) -> int:
    maxevents = s32(maxevents)
    if not 0 < maxevents <= INT_MAX // EPOLL_EVENT_SIZE:
        raise OSError(errno.EINVAL, "maxevents")
    return buf_out(ctx, events, maxevents * EPOLL_EVENT_SIZE)


@syscall("epoll_wait")
def sys_epoll_wait(ctx: VcpuThread, epfd: int, events: int, maxevents: int, timeout_ms: int) -> int:
    return sys_epoll_pwait(ctx, epfd, events, maxevents, timeout_ms, 0, SIGSET_SIZE)


@syscall("epoll_pwait")
def sys_epoll_pwait(ctx: VcpuThread, epfd: int, events: int, maxevents: int, timeout_ms: int, sigmask: int,
                    sigsetsize: int) -> int:
    if sigmask and sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    epfd = fd_arg(epfd)
    return _wait(ctx, NR["epoll_pwait"], epfd, _events_out(ctx, events, maxevents), maxevents,
                 s32(timeout_ms), 0, SIGSET_SIZE, sigmask=sigmask)


@syscall("epoll_pwait2")
def sys_epoll_pwait2(ctx: VcpuThread, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int,
                     sigsetsize: int) -> int:
    if sigmask and sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    epfd = fd_arg(epfd)
    return _wait(ctx, NR["epoll_pwait2"], epfd, _events_out(ctx, events, maxevents), maxevents,
                 buf_in(ctx, timeout, 16) if timeout else 0, 0, SIGSET_SIZE, sigmask=sigmask)


# ---- eventfd, timerfd ---------------------------------------------------------------------------------------------
@syscall("eventfd", descriptors=True)
def sys_eventfd(ctx: VcpuThread, initval: int) -> int:
    return new_fd(host_syscall(NR["eventfd2"], initval, 0))


@syscall("eventfd2", descriptors=True)
def sys_eventfd2(ctx: VcpuThread, initval: int, flags: int) -> int:
    return new_fd(host_syscall(NR["eventfd2"], initval, flags))


@syscall("timerfd_create", descriptors=True)
def sys_timerfd_create(ctx: VcpuThread, clockid: int, flags: int) -> int:
    return new_fd(host_syscall(NR["timerfd_create"], clockid, flags))


@syscall("timerfd_settime")
def sys_timerfd_settime(ctx: VcpuThread, fd: int, flags: int, new_value: int, old_value: int) -> int:
    return host_syscall(NR["timerfd_settime"], fd_arg(fd), flags, buf_in(ctx, new_value, 32),
                        buf_out(ctx, old_value, 32) if old_value else 0)


@syscall("timerfd_gettime")
def sys_timerfd_gettime(ctx: VcpuThread, fd: int, curr_value: int) -> int:
    return host_syscall(NR["timerfd_gettime"], fd_arg(fd), buf_out(ctx, curr_value, 32))
