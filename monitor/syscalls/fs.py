"""File syscalls forwarded to the host kernel: guest buffers are handed over in place (no copies)."""
from __future__ import annotations

import errno
import os
import signal
import struct
from fcntl import F_DUPFD, F_DUPFD_CLOEXEC
from typing import TYPE_CHECKING

from kdbg.arch.linux import SI_USER, make_siginfo

from ..errors import GuestFault
from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE, payload_made
from .args import (AT_FDCWD, addr_of, poison, buf_in, buf_out, buf_span, fd_arg, km_fd_path, names_km_fd, new_fd,
                   path_arg, path_text, proc_fd_path)
from .dispatch import s32, syscall
from .host import blocking_host_syscall, host_syscall
from .numbers import NUMBERS as NR
from .procfs import close_comm, is_fd_directory, open_self_file, without_km_fds
from .signalfd import SignalFd, read_signalfd, signalfd_link

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..vcpu.loop import VcpuThread

UIO_MAXIOV, PATH_MAX = 1024, 4096


def sigpipe_on_epipe(ctx: VcpuThread, result: int) -> int:
    """Linux raises SIGPIPE at a writer to a pipe or socket with no reader (and returns EPIPE if the payload
    survives it). km itself ignores SIGPIPE (as Python does), so the host only answers EPIPE: raise it here."""
    if result == -errno.EPIPE:
        ctx.proc.signals.send(signal.SIGPIPE, make_siginfo(signal.SIGPIPE, SI_USER, pid=ctx.proc.pid), ctx)
    return result


@syscall("read")
def sys_read(ctx: VcpuThread, fd: int, buf: int, count: int) -> int:
    signalfds = ctx.proc.signals.signalfds
    if signalfds is not None:                  # no cost until the payload made one
        sfd = signalfds.find(s32(fd))
        if sfd is not None:
            records = read_signalfd(ctx, sfd, s32(fd), count)
            if isinstance(records, int):
                return records
            ctx.mem.write(buf, records)
            return len(records)
    return blocking_host_syscall(ctx, NR["read"], fd_arg(fd), *buf_span(ctx, buf, count, True))


@syscall("write")
def sys_write(ctx: VcpuThread, fd: int, buf: int, count: int) -> int:
    signalfds = ctx.proc.signals.signalfds
    if signalfds is not None and signalfds.find(s32(fd)) is not None:
        return -errno.EINVAL                   # a signalfd has no write (Linux: not FMODE_CAN_WRITE)
    return sigpipe_on_epipe(ctx, blocking_host_syscall(ctx, NR["write"], fd_arg(fd), *buf_span(ctx, buf, count, False)))


@syscall("pread64")
def sys_pread64(ctx: VcpuThread, fd: int, buf: int, count: int, offset: int) -> int:
    return blocking_host_syscall(ctx, NR["pread64"], fd_arg(fd), *buf_span(ctx, buf, count, True), offset)


@syscall("pwrite64")
def sys_pwrite64(ctx: VcpuThread, fd: int, buf: int, count: int, offset: int) -> int:
    result = blocking_host_syscall(ctx, NR["pwrite64"], fd_arg(fd), *buf_span(ctx, buf, count, False), offset)
    return sigpipe_on_epipe(ctx, result)


def host_iovec(ctx: VcpuThread, iov: int, iovcnt: int, write: bool):
    """The guest's iovec array for the host, with host buffer addresses. As Linux's copy stops at the first
    inaccessible byte, the buffer holding it is cut there and the ones after it get poison() (their lengths stay,
    for the host's own checks); an array too long or unreadable goes over as it is, and the host answers EINVAL or
    EFAULT after checking the fd, as Linux does. Returns the host array (a cffi pointer: keep it alive)."""
    if not 0 < iovcnt <= UIO_MAXIOV:
        return ffi.cast("uint64_t *", poison(iov, 16))
    try:
        raw = ctx.mem.read(iov, 16 * iovcnt)
    except GuestFault:
        return ffi.cast("uint64_t *", poison(iov, 16 * iovcnt))
    host = ffi.new("uint64_t[]", 2 * iovcnt)
    faulted = False
    for i in range(iovcnt):
        base, length = struct.unpack_from("<QQ", raw, 16 * i)
        if faulted or length >> 63:
            address = poison(base, length)
        else:
            address, usable = buf_span(ctx, base, length, write)
            if usable < length or address == poison(base, length):
                faulted = True
                length = usable if usable < length else length
        host[2 * i], host[2 * i + 1] = address, length
    return host


@syscall("readv")
def sys_readv(ctx: VcpuThread, fd: int, iov: int, iovcnt: int) -> int:
    signalfds = ctx.proc.signals.signalfds
    if signalfds is not None and 0 < iovcnt <= UIO_MAXIOV:
        sfd = signalfds.find(s32(fd))
        if sfd is not None:
            return _readv_signalfd(ctx, sfd, s32(fd), iov, iovcnt)
    vec = host_iovec(ctx, iov, iovcnt, True)
    return blocking_host_syscall(ctx, NR["readv"], fd_arg(fd), addr_of(vec), iovcnt)


def _readv_signalfd(ctx: VcpuThread, sfd: SignalFd, fd: int, iov: int, iovcnt: int) -> int:
    """signalfd's read_iter: the records spread over the buffers in order."""
    spans = [struct.unpack_from("<QQ", ctx.mem.read(iov, 16 * iovcnt), 16 * i) for i in range(iovcnt)]
    records = read_signalfd(ctx, sfd, fd, sum(length for _, length in spans))
    if isinstance(records, int):
        return records
    done = 0
    for base, length in spans:
        piece = records[done:done + length]
        if piece:
            ctx.mem.write(base, piece)
        done += len(piece)
    return done


@syscall("writev")
def sys_writev(ctx: VcpuThread, fd: int, iov: int, iovcnt: int) -> int:
    vec = host_iovec(ctx, iov, iovcnt, False)
    return sigpipe_on_epipe(ctx, blocking_host_syscall(ctx, NR["writev"], fd_arg(fd), addr_of(vec), iovcnt))


@syscall("preadv", "preadv2")
def sys_preadv(ctx: VcpuThread, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
    vec = host_iovec(ctx, iov, iovcnt, True)
    return host_syscall(NR["preadv2"], fd_arg(fd), addr_of(vec), iovcnt, pos_l, pos_h, 0)


@syscall("pwritev", "pwritev2")
def sys_pwritev(ctx: VcpuThread, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
    vec = host_iovec(ctx, iov, iovcnt, False)
    return sigpipe_on_epipe(ctx, host_syscall(NR["pwritev2"], fd_arg(fd), addr_of(vec), iovcnt, pos_l, pos_h, 0))


@syscall("openat", descriptors=True)
def sys_openat(ctx: VcpuThread, dirfd: int, path: int, flags: int, mode: int) -> int:
    p = path_arg(ctx, path)
    text = path_text(p)
    if text is not None and text.startswith(b"/proc/"):
        if km_fd_path(text):
            return -errno.ENOENT
        own = open_self_file(ctx, text, flags)
        if own is not None:
            return new_fd(own)
    return new_fd(host_syscall(NR["openat"], fd_arg(dirfd), addr_of(p), flags, mode))


@syscall("open", descriptors=True)
def sys_open(ctx: VcpuThread, path: int, flags: int, mode: int) -> int:
    return sys_openat(ctx, AT_FDCWD, path, flags, mode)


@syscall("creat", descriptors=True)
def sys_creat(ctx: VcpuThread, path: int, mode: int) -> int:
    return sys_openat(ctx, AT_FDCWD, path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)


@syscall("close", descriptors=True)
def sys_close(ctx: VcpuThread, fd: int) -> int:
    return close_fd(ctx.proc, s32(fd))


def close_fd(proc: Process, fd: int) -> int:
    """The payload closes one of its descriptors (close(2), or execve's close-on-exec): 0 or -errno. A written
    /proc/self/task/TID/comm names its thread; a signalfd whose last descriptor goes is forgotten."""
    if fd in proc.comm_writes:
        close_comm(proc, fd)
    signalfds = proc.signals.signalfds
    key = signalfds.key_of(fd) if signalfds is not None else None
    result = host_syscall(NR["close"], fd_arg(fd))
    if signalfds is not None and key is not None and result == 0:
        with proc.signals.lock:
            signalfds.forget_if_closed(key)
    return result


@syscall("lseek")
def sys_lseek(ctx: VcpuThread, fd: int, offset: int, whence: int) -> int:
    return host_syscall(NR["lseek"], fd_arg(fd), offset, whence)


@syscall("fstat")
def sys_fstat(ctx: VcpuThread, fd: int, statbuf: int) -> int:
    return host_syscall(NR["fstat"], fd_arg(fd), buf_out(ctx, statbuf, 144))


@syscall("newfstatat")
def sys_newfstatat(ctx: VcpuThread, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["newfstatat"], fd_arg(dirfd), addr_of(p), buf_out(ctx, statbuf, 144), flags)


@syscall("stat")
def sys_stat(ctx: VcpuThread, path: int, statbuf: int) -> int:
    return sys_newfstatat(ctx, AT_FDCWD, path, statbuf, 0)


@syscall("lstat")
def sys_lstat(ctx: VcpuThread, path: int, statbuf: int) -> int:
    return sys_newfstatat(ctx, AT_FDCWD, path, statbuf, 0x100)      # AT_SYMLINK_NOFOLLOW


@syscall("statx")
def sys_statx(ctx: VcpuThread, dirfd: int, path: int, flags: int, mask: int, buf: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["statx"], fd_arg(dirfd), addr_of(p), flags, mask, buf_out(ctx, buf, 256))


@syscall("getdents64")
def sys_getdents64(ctx: VcpuThread, fd: int, dirp: int, count: int) -> int:
    host = buf_out(ctx, dirp, count)        # the guest's buffer or a bounce copy (flushed after the handler)
    while True:
        result = host_syscall(NR["getdents64"], fd_arg(fd), host, count)
        if result <= 0 or not is_fd_directory(fd):
            return result
        entries = without_km_fds(ffi.buffer(ffi.cast("char *", host), result)[:])
        if entries:         # a batch of km's descriptors only: read on (an empty answer would mean the end)
            ffi.memmove(ffi.cast("char *", host), entries, len(entries))
            return len(entries)


@syscall("readlinkat")
def sys_readlinkat(ctx: VcpuThread, dirfd: int, path: int, buf: int, size: int) -> int:
    if s32(size) <= 0:
        return -errno.EINVAL
    name = ctx.mem.read_cstring(path)
    if name in (b"/proc/self/exe", b"/proc/thread-self/exe", f"/proc/{ctx.proc.pid}/exe".encode()):
        target = os.fsencode(os.path.abspath(ctx.proc.path))[:size]     # the payload, not the Python running km
        ctx.mem.write(buf, target)
        return len(target)
    proc_fd = proc_fd_path(name)
    if names_km_fd(proc_fd):
        return -errno.ENOENT
    signalfd = signalfd_link(ctx, proc_fd) if proc_fd is not None else None
    if signalfd is not None:
        target = signalfd[:size]
        ctx.mem.write(buf, target)
        return len(target)
    p = path_arg(ctx, path)
    return host_syscall(NR["readlinkat"], fd_arg(dirfd), addr_of(p), buf_out(ctx, buf, size), size)


@syscall("readlink")
def sys_readlink(ctx: VcpuThread, path: int, buf: int, size: int) -> int:
    return sys_readlinkat(ctx, AT_FDCWD, path, buf, size)


@syscall("getcwd")
def sys_getcwd(ctx: VcpuThread, buf: int, size: int) -> int:
    """Linux copies only the path and its NUL: the rest of the buffer may be unmapped (ERANGE before EFAULT)."""
    host = ffi.new("char[]", PATH_MAX)
    result = host_syscall(NR["getcwd"], addr_of(host), min(size, PATH_MAX))
    if result > 0:
        ctx.mem.write(buf, ffi.buffer(host, result)[:])
    return result


def _path_call(name: str, path_positions: tuple[int, ...], dirfd_positions: tuple[int, ...] = ()):
    """Register a syscall whose arguments are paths and dirfds (at the given positions) and plain numbers."""
    nr = NR[name]

    def handler(ctx: VcpuThread, a0: int, a1: int, a2: int, a3: int, a4: int) -> int:
        args = [a0, a1, a2, a3, a4]
        for pos in dirfd_positions:
            args[pos] = fd_arg(args[pos])
        keep = [path_arg(ctx, args[pos]) for pos in path_positions]    # alive until the call returns
        for pos, path in zip(path_positions, keep):
            args[pos] = addr_of(path)
        return host_syscall(nr, *args)
    handler.__name__ = f"sys_{name}"
    syscall(name)(handler)
    return handler


for _name, _paths in (("chdir", (0,)), ("unlink", (0,)), ("mkdir", (0,)), ("rmdir", (0,)), ("rename", (0, 1)),
                      ("access", (0,)), ("truncate", (0,)), ("chmod", (0,)), ("symlink", (0, 1)), ("link", (0, 1)),
                      ("chown", (0,)), ("lchown", (0,)), ("mknod", (0,))):
    _path_call(_name, _paths)
for _name, _dirfds, _paths in (("unlinkat", (0,), (1,)), ("mkdirat", (0,), (1,)), ("renameat", (0, 2), (1, 3)),
                               ("renameat2", (0, 2), (1, 3)), ("faccessat", (0,), (1,)),
                               ("faccessat2", (0,), (1,)), ("fchmodat", (0,), (1,)), ("fchownat", (0,), (1,)),
                               ("symlinkat", (1,), (0, 2)), ("linkat", (0, 2), (1, 3)), ("mknodat", (0,), (1,))):
    _path_call(_name, _paths, _dirfds)


@syscall("utimensat")
def sys_utimensat(ctx: VcpuThread, dirfd: int, path: int, times: int, flags: int) -> int:
    p = path_arg(ctx, path) if path else None
    return host_syscall(NR["utimensat"], fd_arg(dirfd), addr_of(p) if p is not None else 0,
                        buf_in(ctx, times, 32) if times else 0, flags)


@syscall("statfs")
def sys_statfs(ctx: VcpuThread, path: int, buf: int) -> int:
    p = path_arg(ctx, path)
    return host_syscall(NR["statfs"], addr_of(p), buf_out(ctx, buf, 120))


@syscall("fstatfs")
def sys_fstatfs(ctx: VcpuThread, fd: int, buf: int) -> int:
    return host_syscall(NR["fstatfs"], fd_arg(fd), buf_out(ctx, buf, 120))


def _fd_call(name: str) -> None:
    """A syscall whose first argument is an fd and the rest plain numbers (all four passed on: fallocate's length
    and fadvise64's advice are the fourth)."""
    nr = NR[name]

    def handler(ctx: VcpuThread, a0: int, a1: int, a2: int, a3: int) -> int:
        return host_syscall(nr, fd_arg(a0), a1, a2, a3)
    syscall(name)(handler)


for _name in ("fchdir", "fsync", "fdatasync", "ftruncate", "fchmod", "fchown", "flock", "fadvise64",
              "syncfs", "fallocate"):
    _fd_call(_name)


@syscall("fcntl")
def sys_fcntl(ctx: VcpuThread, fd: int, cmd: int, arg: int) -> int:
    F_GETFL, F_GETLK, F_SETLK, F_SETLKW = 3, 5, 6, 7
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, 36, 37, 38):   # struct flock / OFD locks
        return host_syscall(NR["fcntl"], fd_arg(fd), cmd, buf_out(ctx, arg, 32))
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if arg >= KM_FD_BASE:               # past the payload's RLIMIT_NOFILE
            return -errno.EINVAL
        return payload_made(lambda: _dup_from(fd, cmd, arg))      # (other commands may block: F_SETLKW)
    result = host_syscall(NR["fcntl"], fd_arg(fd), cmd, arg)
    signalfds = ctx.proc.signals.signalfds
    if cmd == F_GETFL and result >= 0 and signalfds is not None and signalfds.find(s32(fd)) is not None:
        result = result & ~os.O_ACCMODE | os.O_RDWR     # Linux opens a signalfd O_RDWR; km's pipe end is O_RDONLY
    return result


# ioctls km hands to the host: those whose argument points at a buffer (size, the host writes it) and those whose
# argument is a plain number (include/uapi/asm-generic/ioctls.h). Any other request is ENOTTY, as for a device
# without it.
TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCGPGRP, FIONBIO, FIOCLEX = \
    0x5401, 0x5402, 0x5403, 0x5404, 0x5413, 0x5414, 0x541B, 0x540F, 0x5421, 0x5451
TIOCSPGRP, TIOCOUTQ, TIOCMGET, TIOCGSID, TIOCGPTN, TIOCSPTLCK, TCGETS2, TCSETS2, TCSETSW2, TCSETSF2, FIOASYNC = \
    0x5410, 0x5411, 0x5415, 0x5429, 0x80045430, 0x40045431, 0x802C542A, 0x402C542B, 0x402C542C, 0x402C542D, 0x5452
TCSBRK, TCXONC, TCFLSH, TIOCEXCL, TIOCNXCL, TIOCSCTTY, TIOCNOTTY, TCSBRKP, FIONCLEX, TIOCGPTPEER = \
    0x5409, 0x540A, 0x540B, 0x540C, 0x540D, 0x540E, 0x5422, 0x5425, 0x5450, 0x5441
_IOCTL_SIZES = {TCGETS: (60, True), TCSETS: (60, False), TCSETSW: (60, False), TCSETSF: (60, False),
                TIOCGWINSZ: (8, True), TIOCSWINSZ: (8, False), FIONREAD: (4, True), TIOCGPGRP: (4, True),
                FIONBIO: (4, False), TIOCSPGRP: (4, False), TIOCOUTQ: (4, True), TIOCMGET: (4, True),
                TIOCGSID: (4, True), TIOCGPTN: (4, True), TIOCSPTLCK: (4, False), TCGETS2: (44, True),
                TCSETS2: (44, False), TCSETSW2: (44, False), TCSETSF2: (44, False), FIOASYNC: (4, False)}
# struct ifreq (40 bytes, read and written): if_nametoindex, getaddrinfo's %scope names, interface queries
_IOCTL_SIZES.update({request: (40, True) for request in (
    0x8910, 0x8913, 0x8915, 0x8917, 0x8919, 0x891B, 0x891D, 0x8921, 0x8927, 0x8933, 0x8942)})
# /dev/vsock's IOCTL_VM_SOCKETS_GET_LOCAL_CID (linux/vm_sockets.h, an unsigned int): CPython's test_socket asks it
# whether AF_VSOCK works
_IOCTL_SIZES[0x7B9] = (4, True)
_IOCTL_VALUES = {TCSBRK, TCXONC, TCFLSH, TIOCEXCL, TIOCNXCL, TIOCSCTTY, TIOCNOTTY, TCSBRKP, FIONCLEX, FIOCLEX}


@syscall("ioctl")
def sys_ioctl(ctx: VcpuThread, fd: int, request: int, arg: int) -> int:
    request &= 0xFFFFFFFF
    host_fd = fd_arg(fd)
    if request in _IOCTL_VALUES:
        return host_syscall(NR["ioctl"], host_fd, request, arg)
    if request == TIOCGPTPEER:          # a new descriptor: glibc's openpty opens the pty's other side so
        return payload_made(lambda: new_fd(host_syscall(NR["ioctl"], host_fd, request, arg)))
    if request not in _IOCTL_SIZES:
        open_check = host_syscall(NR["fcntl"], host_fd, 1, 0)     # F_GETFD: Linux answers EBADF before ENOTTY
        return open_check if open_check < 0 else -errno.ENOTTY
    size, out = _IOCTL_SIZES[request]
    return host_syscall(NR["ioctl"], host_fd, request, (buf_out if out else buf_in)(ctx, arg, size))


@syscall("memfd_create", descriptors=True)
def sys_memfd_create(ctx: VcpuThread, name: int, flags: int) -> int:
    p = path_arg(ctx, name)
    return new_fd(host_syscall(NR["memfd_create"], addr_of(p), flags))


@syscall("sendfile")
def sys_sendfile(ctx: VcpuThread, out_fd: int, in_fd: int, offset: int, count: int) -> int:
    result = blocking_host_syscall(ctx, NR["sendfile"], fd_arg(out_fd), fd_arg(in_fd),
                            buf_out(ctx, offset, 8) if offset else 0, count)
    return sigpipe_on_epipe(ctx, result)


@syscall("pipe2", descriptors=True)
def sys_pipe2(ctx: VcpuThread, fds: int, flags: int) -> int:
    pair = ffi.new("int[2]")
    result = host_syscall(NR["pipe2"], addr_of(pair), flags)
    if result < 0:
        return result
    if max(pair[0], pair[1]) >= KM_FD_BASE:
        os.close(pair[0])
        os.close(pair[1])
        return -errno.EMFILE
    try:
        ctx.mem.write(fds, struct.pack("<ii", pair[0], pair[1]))
    except GuestFault:                      # Linux checks the pointer by writing it too, then closes the pair
        os.close(pair[0])
        os.close(pair[1])
        raise
    return 0


@syscall("pipe", descriptors=True)
def sys_pipe(ctx: VcpuThread, fds: int) -> int:
    return sys_pipe2(ctx, fds, 0)


def _dup_from(fd: int, cmd: int, lowest: int) -> int:
    """fcntl's F_DUPFD(_CLOEXEC), inside the descriptor gate (the caller's: one call passes it once, as a second
    enter waits behind a km maker that waits for the first)."""
    return new_fd(host_syscall(NR["fcntl"], fd_arg(fd), cmd, lowest))


@syscall("dup", descriptors=True)
def sys_dup(ctx: VcpuThread, fd: int) -> int:
    return _dup_from(fd, F_DUPFD, 0)


@syscall("dup3", descriptors=True)
def sys_dup3(ctx: VcpuThread, old: int, new: int, flags: int) -> int:
    return host_syscall(NR["dup3"], fd_arg(old), fd_arg(new), flags)


@syscall("dup2", descriptors=True)
def sys_dup2(ctx: VcpuThread, old: int, new: int) -> int:
    if s32(old) == s32(new):
        result = host_syscall(NR["fcntl"], fd_arg(old), 1, 0)          # F_GETFD: is it open?
        return result if result < 0 else s32(new)
    return sys_dup3(ctx, old, new, 0)


@syscall("umask")
def sys_umask(ctx: VcpuThread, mask: int) -> int:
    return host_syscall(NR["umask"], mask)


@syscall("sync")
def sys_sync(ctx: VcpuThread) -> int:
    return host_syscall(NR["sync"])


@syscall("copy_file_range")
def sys_copy_file_range(ctx: VcpuThread, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int,
                        flags: int) -> int:
    return host_syscall(NR["copy_file_range"], fd_arg(fd_in), buf_out(ctx, off_in, 8) if off_in else 0,
                        fd_arg(fd_out), buf_out(ctx, off_out, 8) if off_out else 0, length, flags)
