"""Path calls beyond fs.py's, forwarded to the host with the guest's paths and structures: openat2, the old
time setters (utime, utimes, futimesat), fchmodat2, name_to_handle_at and open_by_handle_at."""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from ..errors import GuestFault
from .args import addr_of, poison, buf_in, buf_out, fd_arg, km_fd_path, new_fd, path_arg, path_text
from .dispatch import syscall
from .host import blocking_host_syscall, host_syscall
from .numbers import NUMBERS as NR
from .procfs import open_self_file

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

OPEN_HOW_SIZE_VER0, PAGE = 24, 4096
MAX_HANDLE_SZ = 128
AT_HANDLE_MNT_ID_UNIQUE = 0x001


@syscall("openat2", descriptors=True)
def sys_openat2(ctx: VcpuThread, dirfd: int, path: int, how: int, size: int) -> int:
    """The host checks `how` (size, unknown fields, flags, RESOLVE_*) in Linux's order; the payload's own
    /proc/self files are km's, as for openat."""
    p = path_arg(ctx, path)
    text = path_text(p)
    if km_fd_path(text):
        return -errno.ENOENT
    if text is not None and text.startswith(b"/proc/") and OPEN_HOW_SIZE_VER0 <= size <= PAGE:
        try:
            flags = struct.unpack("<Q", ctx.mem.read(how, 8))[0]
        except GuestFault:
            flags = None
        own = open_self_file(ctx, text, flags & 0xFFFFFFFF) if flags is not None else None
        if own is not None:
            return new_fd(own)
    host_how = buf_in(ctx, how, size) if size <= PAGE else poison(how, size)
    return new_fd(blocking_host_syscall(ctx, NR["openat2"], fd_arg(dirfd), addr_of(p), host_how, size))


@syscall("utime")
def sys_utime(ctx: VcpuThread, path: int, times: int) -> int:
    return host_syscall(NR["utime"], addr_of(path_arg(ctx, path)), buf_in(ctx, times, 16) if times else 0)


@syscall("utimes")
def sys_utimes(ctx: VcpuThread, path: int, times: int) -> int:
    return host_syscall(NR["utimes"], addr_of(path_arg(ctx, path)), buf_in(ctx, times, 32) if times else 0)


@syscall("futimesat")
def sys_futimesat(ctx: VcpuThread, dirfd: int, path: int, times: int) -> int:
    return host_syscall(NR["futimesat"], fd_arg(dirfd), addr_of(path_arg(ctx, path)),
                        buf_in(ctx, times, 32) if times else 0)


@syscall("fchmodat2")
def sys_fchmodat2(ctx: VcpuThread, dirfd: int, path: int, mode: int, flags: int) -> int:
    return host_syscall(NR["fchmodat2"], fd_arg(dirfd), addr_of(path_arg(ctx, path)), mode, flags)


def _handle_size(ctx: VcpuThread, handle: int) -> int:
    """The bytes of a struct file_handle the host will touch (its header, then at most MAX_HANDLE_SZ)."""
    try:
        return 8 + min(struct.unpack("<I", ctx.mem.read(handle, 4))[0], MAX_HANDLE_SZ)
    except GuestFault:
        return 8


@syscall("name_to_handle_at")
def sys_name_to_handle_at(ctx: VcpuThread, dirfd: int, path: int, handle: int, mount_id: int, flags: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["name_to_handle_at"], fd_arg(dirfd), addr_of(p),
                        buf_out(ctx, handle, _handle_size(ctx, handle)),
                        buf_out(ctx, mount_id, 8 if flags & AT_HANDLE_MNT_ID_UNIQUE else 4), flags)


@syscall("open_by_handle_at", descriptors=True)
def sys_open_by_handle_at(ctx: VcpuThread, mount_fd: int, handle: int, flags: int) -> int:
    return new_fd(host_syscall(NR["open_by_handle_at"], fd_arg(mount_fd),
                               buf_in(ctx, handle, _handle_size(ctx, handle)), flags))
