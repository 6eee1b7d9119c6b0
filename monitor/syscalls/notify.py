"""File-change notification (inotify, fanotify): descriptors and watches the host keeps for the payload."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .args import addr_of, fd_arg, new_fd, path_arg
from .dispatch import syscall
from .host import host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread


@syscall("inotify_init", descriptors=True)
def sys_inotify_init(ctx: VcpuThread) -> int:
    return new_fd(host_syscall(NR["inotify_init1"], 0))


@syscall("inotify_init1", descriptors=True)
def sys_inotify_init1(ctx: VcpuThread, flags: int) -> int:
    return new_fd(host_syscall(NR["inotify_init1"], flags))


@syscall("inotify_add_watch")
def sys_inotify_add_watch(ctx: VcpuThread, fd: int, path: int, mask: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["inotify_add_watch"], fd_arg(fd), addr_of(p), mask)


@syscall("inotify_rm_watch")
def sys_inotify_rm_watch(ctx: VcpuThread, fd: int, wd: int) -> int:
    return host_syscall(NR["inotify_rm_watch"], fd_arg(fd), wd)


@syscall("fanotify_init", descriptors=True)
def sys_fanotify_init(ctx: VcpuThread, flags: int, event_f_flags: int) -> int:
    return new_fd(host_syscall(NR["fanotify_init"], flags, event_f_flags))


@syscall("fanotify_mark")
def sys_fanotify_mark(ctx: VcpuThread, fanotify_fd: int, flags: int, mask: int, dirfd: int, path: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["fanotify_mark"], fd_arg(fanotify_fd), flags, mask, fd_arg(dirfd), addr_of(p))
