"""vFile host I/O (read-only): open/pread/close/fstat/readlink/setfs, so gdb can read the payload's ELF
"from the target" when it was not given the file.

Replies are `F<result>[;binary]` or `F-1,<errno>` with gdb's File-I/O errno numbers.
Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/Host-I_002fO-Packets.html
"""
from __future__ import annotations

import errno
import os
import struct

from kdbg.rsp.commands import command, hex_fields, parse_hex
from kdbg.rsp.fds import own_new
from kdbg.rsp.packets import PACKET_SIZE, escape
from kdbg.rsp.procfs import virtual_file, virtual_link
from kdbg.rsp.session import Session

MAX_PREAD = PACKET_SIZE // 2 - 64   # gdb asks for PacketSize bytes per pread (its read-ahead cache); escaping
#                                     at most doubles them. 4 KiB made gdb's reads of a library 3x gdbserver's
MAX_OPEN = 64
# Host errno -> gdb File-I/O errno (gdb/gdbsupport/fileio.h); the numbers agree except ENAMETOOLONG.
_FILEIO_ERRNO = {errno.EPERM: 1, errno.ENOENT: 2, errno.EINTR: 4, errno.EBADF: 9, errno.EACCES: 13,
                 errno.EFAULT: 14, errno.EBUSY: 16, errno.EEXIST: 17, errno.ENODEV: 19, errno.ENOTDIR: 20,
                 errno.EISDIR: 21, errno.EINVAL: 22, errno.ENFILE: 23, errno.EMFILE: 24, errno.EFBIG: 27,
                 errno.ENOSPC: 28, errno.ESPIPE: 29, errno.EROFS: 30, errno.ENAMETOOLONG: 91}
FILEIO_EUNKNOWN = 9999
# struct fio_stat: big-endian dev, ino, mode, nlink, uid, gid, rdev (32-bit), size, blksize, blocks (64-bit),
# atime, mtime, ctime (32-bit).
_FIO_STAT = struct.Struct(">7I3Q3I")


def _failure(err: int) -> bytes:
    return b"F-1,%x" % _FILEIO_ERRNO.get(err, FILEIO_EUNKNOWN)


def _path(hex_name: bytes) -> str:
    return bytes.fromhex(hex_name.decode("ascii")).decode("utf-8", "surrogateescape")


def _parse_open(rest: bytes) -> tuple[str, int, int]:
    name, _, numbers = rest.partition(b",")
    flags, mode = hex_fields(b",")(numbers)
    return _path(name), flags, mode


@command("vFile:open", _parse_open)
def file_open(session: Session, path: str, flags: int, mode: int) -> bytes:
    if flags != 0:                # anything but O_RDONLY (write, create, truncate, append)
        return _failure(errno.EROFS)
    if len(session.host_files) >= MAX_OPEN:
        return _failure(errno.EMFILE)
    content = virtual_file(session.target, path)
    if content is not None:                 # the payload's /proc files, not km's
        fd = max(session.host_files, default=-1) + 1
        session.host_files[fd] = content
        return b"F%x" % fd
    try:
        host_fd = own_new(lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        return _failure(exc.errno or 0)
    fd = max(session.host_files, default=-1) + 1
    session.host_files[fd] = host_fd
    return b"F%x" % fd


def _host_fd(session: Session, fd: int) -> int | bytes | None:
    return session.host_files.get(fd)


@command("vFile:pread", hex_fields(b",", b","))
def file_pread(session: Session, fd: int, count: int, offset: int) -> bytes:
    host_fd = _host_fd(session, fd)
    if host_fd is None:
        return _failure(errno.EBADF)
    if isinstance(host_fd, bytes):
        data = host_fd[offset:offset + min(count, MAX_PREAD)]
        return b"F%x;" % len(data) + escape(data)
    try:
        data = os.pread(host_fd, min(count, MAX_PREAD), offset)
    except OSError as exc:
        return _failure(exc.errno or 0)
    return b"F%x;" % len(data) + escape(data)


@command("vFile:close", lambda rest: (parse_hex(rest),))
def file_close(session: Session, fd: int) -> bytes:
    host_fd = session.host_files.pop(fd, None)
    if host_fd is None:
        return _failure(errno.EBADF)
    if not isinstance(host_fd, bytes):
        os.close(host_fd)
    return b"F0"


@command("vFile:fstat", lambda rest: (parse_hex(rest),))
def file_fstat(session: Session, fd: int) -> bytes:
    host_fd = _host_fd(session, fd)
    if host_fd is None:
        return _failure(errno.EBADF)
    if isinstance(host_fd, bytes):
        data = _FIO_STAT.pack(0, 0, 0o100444, 1, 0, 0, 0, len(host_fd), 4096, (len(host_fd) + 511) // 512, 0, 0, 0)
        return b"F%x;" % len(data) + escape(data)
    st = os.fstat(host_fd)
    m32 = 0xFFFFFFFF
    data = _FIO_STAT.pack(st.st_dev & m32, st.st_ino & m32, st.st_mode & m32, st.st_nlink & m32, st.st_uid & m32,
                          st.st_gid & m32, st.st_rdev & m32, st.st_size, st.st_blksize, st.st_blocks,
                          int(st.st_atime) & m32, int(st.st_mtime) & m32, int(st.st_ctime) & m32)
    return b"F%x;" % len(data) + escape(data)


@command("vFile:readlink", lambda rest: (_path(rest),))
def file_readlink(session: Session, path: str) -> bytes:
    link = virtual_link(session.target, path)
    try:
        target = os.fsencode(link if link is not None else os.readlink(path))
    except OSError as exc:
        return _failure(exc.errno or 0)
    return b"F%x;" % len(target) + escape(target)


@command("vFile:setfs", lambda rest: (parse_hex(rest),))
def file_setfs(session: Session, pid: int) -> bytes:
    """One filesystem: km's. Any pid (0 = the remote's own) names it."""
    return b"F0"


def close_all(session: Session) -> None:
    for host_fd in session.host_files.values():
        if not isinstance(host_fd, bytes):
            os.close(host_fd)
    session.host_files.clear()
