"""Turning syscall arguments into host ones: guest buffers to host addresses, paths to C strings, fds checked."""
from __future__ import annotations

import errno
import os

from ..errors import GuestFault
from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE
from .bounce import bounce
from .dispatch import s32

AT_FDCWD = -100


class BadFd(OSError):
    def __init__(self) -> None:
        super().__init__(errno.EBADF, "km's own descriptor")


def fd_arg(value: int, allow_at_fdcwd: bool = False) -> int:
    """A payload fd; km's own descriptors (>= KM_FD_BASE) are invisible to the payload."""
    fd = s32(value)
    if fd >= KM_FD_BASE or (fd < 0 and not (allow_at_fdcwd and fd == AT_FDCWD)):
        raise BadFd()
    return fd


def new_fd(result: int) -> int:
    """A descriptor the host just made for the payload: one in km's range (the payload has used up the
    KM_FD_BASE it is told is its RLIMIT_NOFILE) is closed and answered EMFILE, as Linux would."""
    if result >= KM_FD_BASE:
        os.close(result)
        return -errno.EMFILE
    return result


def _host_buffer(ctx, gva: int, size: int, write: bool) -> int:
    """The guest buffer in place when it is one host range, else a bounce copy (GuestFault if unmapped)."""
    if not size:
        return 0
    try:
        return ctx.mem.host_addr(gva, size, write=write)
    except GuestFault:
        return bounce(ctx.mem, gva, size, write=write)


def buf_in(ctx, gva: int, size: int) -> int:
    """Host address of a guest buffer the host kernel will read."""
    return _host_buffer(ctx, gva, size, False)


def buf_out(ctx, gva: int, size: int) -> int:
    """Host address of a guest buffer the host kernel will write."""
    return _host_buffer(ctx, gva, size, True)


def path_arg(ctx, gva: int):
    """A guest path as a cffi char[] (keep the returned object alive during the call)."""
    if gva == 0:
        raise GuestFault(0, 1)
    return ffi.new("char[]", ctx.mem.read_cstring(gva, 4096))


def addr_of(cdata) -> int:
    return int(ffi.cast("uintptr_t", cdata))
