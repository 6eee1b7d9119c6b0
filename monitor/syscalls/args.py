"""Turning syscall arguments into host ones: guest buffers to host addresses, paths to C strings, fds checked."""
from __future__ import annotations

import errno
import os
import re
import stat
from typing import TYPE_CHECKING

from ..errors import GuestFault
from ..memory.guest import USER_TOP
from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE
from .bounce import bounce
from .dispatch import s32

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

AT_FDCWD = -100


BAD_FD = 0x7FFFFFFF        # a descriptor number no process has open (RLIMIT_NOFILE is far below)
POISON = 0xFFFF800000000000  # a kernel address: the host refuses it (EFAULT) when it checks or touches it
LOW_POISON = 0x1000          # a user address below mmap_min_addr: never mapped, so the host faults when it touches it


def poison(gva: int, size: int) -> int:
    """What the host gets for a guest buffer km cannot hand over: NULL for NULL; for a range Linux's access_ok()
    accepts, an unmapped user address (the host faults where Linux's copy would, after every earlier check);
    for one it refuses (the kernel half, past TASK_SIZE, wrapping), a kernel address (refused as early)."""
    if not gva:
        return 0
    return LOW_POISON if gva + size <= USER_TOP else POISON


def fd_arg(value: int) -> int:
    """A payload fd for the host. km's own descriptors (>= KM_FD_BASE) are invisible to the payload: they become
    BAD_FD, and a negative one stays negative, so the host answers EBADF at the point where Linux looks at the fd
    (after the flags it checks first, before the buffers it copies later)."""
    fd = s32(value)
    return BAD_FD if fd >= KM_FD_BASE else fd


# Files of km's own /proc view that would reach km's process itself: its memory (read and written through
# /proc/self/mem), its page map, its other mappings. Found by following the new descriptor, whatever path led there.
# (Patterns are compiled at their first use, through re's cache: not at every km start.)
_KM_PROC_FILES = (rb"^/proc/\d+/(?:task/\d+/)?(?:mem|pagemap|smaps|smaps_rollup|numa_maps|clear_refs|"
                  rb"syscall|stack|map_files(?:/.*)?)$")
# A descriptor through /proc: whose (self, thread-self, a pid), fd or fdinfo, its number, what follows it.
_PROC_FDS = rb"^/proc/(self|thread-self|\d+)(?:/task/\d+)?/fd(info)?/(\d+)(/.*)?$"


def new_fd(result: int) -> int:
    """A descriptor the host just made for the payload: one in km's range (the payload has used up the
    KM_FD_BASE it is told is its RLIMIT_NOFILE) is closed and answered EMFILE, as Linux would; one open on a
    file of km's own /proc (its memory...) is closed and answered EACCES, as Linux answers without ptrace
    rights over the process."""
    if result >= KM_FD_BASE:
        os.close(result)
        return -errno.EMFILE
    if result >= 0:
        try:
            st = os.fstat(result)
            if st.st_size and not stat.S_ISDIR(st.st_mode):
                return result           # not one of those files (each reads as empty): most opens stop here
            target = os.readlink(b"/proc/self/fd/%d" % result)
        except OSError:
            return result
        if re.match(_KM_PROC_FILES, target):
            os.close(result)
            return -errno.EACCES
    return result


def proc_fd_path(path: bytes | None) -> re.Match[bytes] | None:
    """A path that names a descriptor through /proc ({self,thread-self,PID}[/task/TID]/fd[info]/N[/...], once
    normalised), parsed: groups (whose, b"info" or None, N, what follows N or None); None for any other path."""
    return None if path is None else re.match(_PROC_FDS, os.path.normpath(path))


def names_km_fd(proc_fd: re.Match[bytes] | None) -> bool:
    """Whether proc_fd_path's parse names one of km's descriptors (N >= KM_FD_BASE): reopening it would hand the
    payload km's file."""
    return proc_fd is not None and int(proc_fd[3]) >= KM_FD_BASE


def km_fd_path(path: bytes | None) -> bool:
    """Whether a path names one of km's descriptors through /proc (fd/N or fdinfo/N)."""
    return names_km_fd(proc_fd_path(path))


def _host_buffer(ctx: VcpuThread, gva: int, size: int, write: bool) -> int:
    """The guest buffer in place when it is one host range, else a bounce copy; POISON when a byte of it is not
    accessible (the host answers EFAULT where Linux copies it, after Linux's earlier checks), NULL for NULL."""
    if not size:
        return 0
    try:
        return ctx.mem.host_addr(gva, size, write=write)
    except GuestFault:
        try:
            return bounce(ctx.mem, gva, size, write=write)
        except GuestFault:
            return poison(gva, size)


def buf_in(ctx: VcpuThread, gva: int, size: int) -> int:
    """Host address of a guest buffer the host kernel will read."""
    return _host_buffer(ctx, gva, size, False)


def buf_out(ctx: VcpuThread, gva: int, size: int) -> int:
    """Host address of a guest buffer the host kernel will write."""
    return _host_buffer(ctx, gva, size, True)


def buf_span(ctx: VcpuThread, gva: int, size: int, write: bool) -> tuple[int, int]:
    """(host address, length) for read/write-like calls: a buffer accessible only in part is cut at the first
    inaccessible byte (or the first seam between non-adjacent host backings before it), so the host moves the
    bytes before it and answers that count, as Linux does when its copy faults midway. Never more than km
    checked: the host writes only into the guest range."""
    if not size:
        return 0, 0
    try:
        return ctx.mem.host_addr(gva, size, write=write), size
    except GuestFault:
        pass
    if gva + size > USER_TOP:                      # access_ok() refuses the range before any copy
        return poison(gva, size), size
    usable = ctx.mem.accessible(gva, size, write)
    if usable == size:
        return _host_buffer(ctx, gva, size, write), size
    if not usable:
        return poison(gva, size), size
    host, length = ctx.mem.pieces(gva, usable, write)[0]
    return host, length


def path_arg(ctx: VcpuThread, gva: int):
    """A guest path for the host, as a cffi char[] copy (keep it alive during the call). NULL stays NULL, an
    unreadable one becomes POISON and one without a NUL in PATH_MAX bytes an unterminated copy, so the host
    answers EFAULT or ENAMETOOLONG where Linux reads the path, after the checks Linux makes before it."""
    if gva == 0:
        return ffi.NULL
    try:
        return ffi.new("char[]", ctx.mem.read_cstring(gva, 4096))
    except GuestFault:
        return ffi.cast("char *", poison(gva, 1))
    except OSError:                                    # ENAMETOOLONG
        return ffi.new("char[]", b"x" * 4096)


def path_text(path) -> bytes | None:
    """The bytes of a path_arg() result, or None when the host will refuse it (NULL, unreadable, too long)."""
    if path == ffi.NULL or addr_of(path) in (POISON, LOW_POISON):
        return None
    return ffi.string(path)


def addr_of(cdata) -> int:
    return int(ffi.cast("uintptr_t", cdata))
