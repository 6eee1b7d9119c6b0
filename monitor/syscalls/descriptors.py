"""Descriptor-level calls forwarded to the host: close_range, pidfd_open/pidfd_getfd, the pipe
movers (splice, tee, vmsplice), getdents, readahead, sync_file_range, cachestat.

km's own descriptors (KM_FD_BASE and up) stay out of reach: close_range stops below them, pidfd_getfd cannot
take one, and fd_arg turns any of them into a number the host refuses.
"""
from __future__ import annotations

import errno
import fcntl
import os
from typing import TYPE_CHECKING

from ..host_fds import CLOSE_RANGE_UNSHARE, KM_FD_BASE
from .args import BAD_FD, addr_of, buf_in, buf_out, fd_arg, new_fd
from .dispatch import s32, syscall
from .fs import host_iovec
from .host import blocking_host_syscall, host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

CLOSE_RANGE_CLOEXEC = 4                  # include/uapi/linux/close_range.h (UNSHARE: host_fds)


@syscall("close_range", descriptors=True)
def sys_close_range(ctx: VcpuThread, first: int, last: int, flags: int) -> int:
    """Closes (or marks close-on-exec) the payload's descriptors in [first, last], never km's above them.
    CLOSE_RANGE_UNSHARE would give only the calling host thread its own table (km's other threads keep the
    shared one), and the payload's table is km's anyway: it is accepted and changes nothing else."""
    first, last, flags = first & 0xFFFFFFFF, last & 0xFFFFFFFF, flags & 0xFFFFFFFF     # unsigned ints
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        return -errno.EINVAL
    if first >= KM_FD_BASE:
        return 0
    return host_syscall(NR["close_range"], first, min(last, KM_FD_BASE - 1), flags & CLOSE_RANGE_CLOEXEC)


@syscall("pidfd_open", descriptors=True)
def sys_pidfd_open(ctx: VcpuThread, pid: int, flags: int) -> int:
    return new_fd(host_syscall(NR["pidfd_open"], s32(pid), flags))


@syscall("pidfd_getfd", descriptors=True)
def sys_pidfd_getfd(ctx: VcpuThread, pidfd: int, targetfd: int, flags: int) -> int:
    """The target's descriptor numbers at KM_FD_BASE and up are km's (the payload's own, or a forked payload's
    km): never handed out."""
    target = s32(targetfd)
    return new_fd(host_syscall(NR["pidfd_getfd"], fd_arg(pidfd), BAD_FD if target >= KM_FD_BASE else target,
                               flags))


@syscall("getdents")
def sys_getdents(ctx: VcpuThread, fd: int, dirp: int, count: int) -> int:
    return host_syscall(NR["getdents"], fd_arg(fd), buf_out(ctx, dirp, count & 0xFFFFFFFF), count)


@syscall("readahead")
def sys_readahead(ctx: VcpuThread, fd: int, offset: int, count: int) -> int:
    return host_syscall(NR["readahead"], fd_arg(fd), offset, count)


@syscall("sync_file_range")
def sys_sync_file_range(ctx: VcpuThread, fd: int, offset: int, nbytes: int, flags: int) -> int:
    return blocking_host_syscall(ctx, NR["sync_file_range"], fd_arg(fd), offset, nbytes, flags)


@syscall("cachestat")
def sys_cachestat(ctx: VcpuThread, fd: int, cstat_range: int, cstat: int, flags: int) -> int:
    return host_syscall(NR["cachestat"], fd_arg(fd), buf_in(ctx, cstat_range, 16), buf_out(ctx, cstat, 40), flags)


@syscall("splice")
def sys_splice(ctx: VcpuThread, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int, flags: int) -> int:
    return blocking_host_syscall(ctx, NR["splice"], fd_arg(fd_in), buf_out(ctx, off_in, 8) if off_in else 0,
                                 fd_arg(fd_out), buf_out(ctx, off_out, 8) if off_out else 0, length, flags)


@syscall("tee")
def sys_tee(ctx: VcpuThread, fd_in: int, fd_out: int, length: int, flags: int) -> int:
    return blocking_host_syscall(ctx, NR["tee"], fd_arg(fd_in), fd_arg(fd_out), length, flags)


@syscall("vmsplice")
def sys_vmsplice(ctx: VcpuThread, fd: int, iov: int, nr_segs: int, flags: int) -> int:
    """Into a pipe the host reads the guest's buffers; out of one (a read end) it writes them, so they must be
    writable for the guest."""
    host_fd = fd_arg(fd)
    mode = host_syscall(NR["fcntl"], host_fd, fcntl.F_GETFL)
    reading = mode < 0 or mode & os.O_ACCMODE == os.O_RDONLY     # a bad fd: the host refuses it before any buffer
    vec = host_iovec(ctx, iov, nr_segs, reading)
    return blocking_host_syscall(ctx, NR["vmsplice"], host_fd, addr_of(vec), nr_segs, flags)
