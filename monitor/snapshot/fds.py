"""The payload's descriptors in a snapshot: what each one is (capture), and the same again in a resumed km.

The payload's descriptors are km's own host descriptors below KM_FD_BASE, so they are read from /proc/self/fd and
fdinfo. Regular files and directories come back by path, flags and offset (one that is gone reads EBADF, with a
trace line); devices by path; pipes between the payload's own descriptors come back as pipes holding the same
bytes; listening sockets are bound again and listen; connected sockets come back reset; eventfd, epoll and a
disarmed timerfd are made again. Descriptors 0-2 are the resuming km's. What cannot be restored is refused by
name (SnapshotError) before anything is written.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import re
import socket
import stat
import struct

from kdbg.tracelog import logger
from ..kvm.abi import ffi
from ..host_fds import payload_fds
from ..syscalls.fs import FIONREAD
from ..syscalls.host import host_syscall
from ..syscalls.numbers import NUMBERS as NR
from .errors import SnapshotError
from .layouts import Descriptor, FdKind, km_epoll_item, km_fd

log = logger("km.snapshot")
STDIO = 3                    # 0, 1 and 2 are the resuming km's own
EPOLL_CTL_ADD = 1                # <sys/epoll.h> (Python's select module does not export it)
SOCKADDR_MAX = 128
_ANON = re.compile(r"anon_inode:\[?([\w-]+)\]?")


# ---- capture ------------------------------------------------------------------------------------------------
def _saved_fds() -> list[int]:
    """The descriptors a snapshot holds: the payload's from 3 up (0-2 are km's stdio)."""
    return [fd for fd in payload_fds() if fd >= STDIO]


def capture(signalfd_pipes: set[tuple[int, int]]) -> list[Descriptor]:
    """Every descriptor of the (frozen) payload; SnapshotError naming the first that cannot be restored (as a
    signalfd, a pipe of km's that `signalfd_pipes` names by (st_dev, st_ino))."""
    found = []
    for fd in _saved_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            info = os.fstat(fd)
        except OSError:
            continue                    # gone meanwhile (listdir's own descriptor)
        if (info.st_dev, info.st_ino) in signalfd_pipes:
            raise SnapshotError("snapshot", f"fd {fd}: a signalfd cannot be restored")
        found.append(_describe(fd, target, info))
    _pair_pipes(found)
    return found


def _describe(fd: int, target: str, info: os.stat_result) -> Descriptor:
    record = km_fd(fd=fd, flags=fcntl.fcntl(fd, fcntl.F_GETFL), fd_flags=fcntl.fcntl(fd, fcntl.F_GETFD), peer=-1)
    mode = info.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        if target.startswith("/memfd:"):
            raise SnapshotError("snapshot", f"fd {fd}: a memfd ({target}) cannot be restored")
        record.kind = FdKind.KM_FD_DIRECTORY if stat.S_ISDIR(mode) else FdKind.KM_FD_FILE
        if target.endswith(" (deleted)") or not target.startswith("/"):
            record.kind = FdKind.KM_FD_GONE
        if not stat.S_ISCHR(mode):
            record.offset = _offset(fd)
        return Descriptor(record, os.fsencode(target))
    if stat.S_ISFIFO(mode):
        if not target.startswith("pipe:"):
            raise SnapshotError("snapshot", f"fd {fd}: a named FIFO ({target}) cannot be restored")
        record.kind, record.value = FdKind.KM_FD_PIPE, info.st_ino
        data = _pipe_contents(fd) if record.flags & os.O_ACCMODE == os.O_RDONLY else b""
        return Descriptor(record, b"", data)
    if stat.S_ISSOCK(mode):
        return _describe_socket(fd, record)
    anon = _ANON.fullmatch(target)
    kind = anon.group(1) if anon else target
    fdinfo = _fdinfo(fd)
    if kind == "eventfd":
        record.kind, record.value = FdKind.KM_FD_EVENTFD, int(fdinfo.get("eventfd-count", "0"), 16)
        record.type = os.EFD_SEMAPHORE if fdinfo.get("eventfd-semaphore", "0").strip() == "1" else 0
        return Descriptor(record)
    if kind == "eventpoll":
        record.kind = FdKind.KM_FD_EPOLL
        return Descriptor(record, b"", b"".join(bytes(item) for item in _epoll_items(fd)))
    if kind == "timerfd":
        if fdinfo.get("it_value", "(0, 0)").replace(" ", "") != "(0,0)":
            raise SnapshotError("snapshot", f"fd {fd}: an armed timerfd cannot be restored")
        record.kind, record.value = FdKind.KM_FD_TIMERFD, int(fdinfo.get("clockid", "1"))
        return Descriptor(record)
    raise SnapshotError("snapshot", f"fd {fd}: {target} cannot be restored")


def _offset(fd: int) -> int:
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return 0


def _fdinfo(fd: int) -> dict[str, str]:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return dict(line.rstrip("\n").split(":\t", 1) if ":\t" in line else line.rstrip("\n").split(":", 1)
                    for line in f if ":" in line)


def _epoll_items(fd: int) -> list[km_epoll_item]:
    """fs/eventpoll.c ep_show_fdinfo: `tfd: %8d events: %8x data: %16llx pos:...` per watched descriptor."""
    items = []
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            match = re.match(r"tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)", line)
            if match:
                items.append(km_epoll_item(int(match.group(1)), int(match.group(2), 16), int(match.group(3), 16)))
    return items


def _pipe_contents(fd: int) -> bytes:
    """What is buffered in a pipe, read and written straight back (the payload is frozen; a live snapshot goes on
    with the same bytes)."""
    count = ffi.new("int *")
    if host_syscall(NR["ioctl"], fd, FIONREAD, int(ffi.cast("uintptr_t", count))) < 0 or not count[0]:
        return b""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        data = os.read(fd, count[0])
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    writer = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(writer, data)
    finally:
        os.close(writer)
    return data


def _pair_pipes(found: list[Descriptor]) -> None:
    """Each pipe end learns the payload's descriptor of its other end (-1: outside the payload)."""
    ends: dict[tuple[int, bool], int] = {}
    for d in found:
        if d.record.kind == FdKind.KM_FD_PIPE:
            ends.setdefault((d.record.value, d.record.flags & os.O_ACCMODE == os.O_RDONLY), d.record.fd)
    for d in found:
        if d.record.kind == FdKind.KM_FD_PIPE:
            d.record.peer = ends.get((d.record.value, d.record.flags & os.O_ACCMODE != os.O_RDONLY), -1)


def _describe_socket(fd: int, record: km_fd) -> Descriptor:
    def option(name: int) -> int:
        value, size = ffi.new("int *"), ffi.new("int *", 4)
        result = host_syscall(NR["getsockopt"], fd, socket.SOL_SOCKET, name, int(ffi.cast("uintptr_t", value)),
                              int(ffi.cast("uintptr_t", size)))
        return value[0] if result == 0 else 0
    record.domain, record.type, record.protocol = (option(socket.SO_DOMAIN), option(socket.SO_TYPE),
                                                   option(socket.SO_PROTOCOL))
    local, peer = _sockaddr(fd, "getsockname"), _sockaddr(fd, "getpeername")
    record.connected = int(bool(peer))
    record.kind = FdKind.KM_FD_LISTENER if option(socket.SO_ACCEPTCONN) else FdKind.KM_FD_SOCKET
    return Descriptor(record, peer, local)


def _sockaddr(fd: int, call: str) -> bytes:
    buf, size = ffi.new("char[]", SOCKADDR_MAX), ffi.new("int *", SOCKADDR_MAX)
    result = host_syscall(NR[call], fd, int(ffi.cast("uintptr_t", buf)), int(ffi.cast("uintptr_t", size)))
    return bytes(ffi.buffer(buf, size[0])) if result == 0 else b""


# ---- restore ------------------------------------------------------------------------------------------------
def close_all() -> None:
    """Close the payload's descriptors once a final snapshot is written (the payload is frozen and ends): a
    listening port is free by the time the one who asked hears that the snapshot is written."""
    for fd in _saved_fds():
        try:
            os.close(fd)
        except OSError:
            pass


def restore(descriptors: list[Descriptor], path: str) -> None:
    """Make every descriptor of the snapshot at `path` again at its own number; one that cannot be made is left
    closed (EBADF for the payload), with a trace line saying why, except a listening socket that cannot listen
    again: a server that cannot serve is refused (SnapshotError)."""
    pipes: dict[tuple[int, bool], int] = {}
    for d in descriptors:
        kind = d.record.kind
        try:
            if kind == FdKind.KM_FD_EPOLL:
                continue                        # after the descriptors it watches
            fd = _pipe_end(d, pipes) if kind == FdKind.KM_FD_PIPE else _make(d)
        except OSError as e:
            if kind == FdKind.KM_FD_LISTENER:
                raise SnapshotError(path, f"cannot be resumed: fd {d.record.fd} listened on "
                                          f"{_address(d.data)}: {e.strerror or e}") from None
            log.info("fd %d (%s): not restored (%s): EBADF", d.record.fd, _what(d), e.strerror or e)
            continue
        if fd is not None:
            _place(fd, d)
    for d in descriptors:
        if d.record.kind == FdKind.KM_FD_EPOLL:
            try:
                _place(_epoll(d), d)
            except OSError as e:
                log.info("fd %d (epoll): not restored (%s): EBADF", d.record.fd, e.strerror or e)


def _address(sockaddr: bytes) -> str:
    """host:port of an inet sockaddr, the path of a unix one."""
    family = struct.unpack_from("<H", sockaddr)[0] if len(sockaddr) >= 2 else 0
    if family == socket.AF_INET and len(sockaddr) >= 8:
        return f"{socket.inet_ntop(socket.AF_INET, sockaddr[4:8])}:{struct.unpack_from('>H', sockaddr, 2)[0]}"
    if family == socket.AF_INET6 and len(sockaddr) >= 24:
        return f"[{socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])}]:{struct.unpack_from('>H', sockaddr, 2)[0]}"
    return os.fsdecode(sockaddr[2:].split(b"\0", 1)[0]) or "an abstract address"


def _what(d: Descriptor) -> str:
    return os.fsdecode(d.path) if d.record.kind in (FdKind.KM_FD_FILE, FdKind.KM_FD_DIRECTORY, FdKind.KM_FD_GONE) \
        else FdKind(d.record.kind).name[6:].lower()


def _place(fd: int, d: Descriptor) -> None:
    """The new descriptor at the payload's number, with its close-on-exec flag."""
    target = d.record.fd
    if fd != target:
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    fcntl.fcntl(target, fcntl.F_SETFD, d.record.fd_flags)


def _make(d: Descriptor) -> int | None:
    r = d.record
    status = r.flags & (os.O_NONBLOCK | os.O_APPEND)
    if r.kind == FdKind.KM_FD_GONE:
        log.info("fd %d: %s is gone: EBADF", r.fd, os.fsdecode(d.path))
        return None
    if r.kind in (FdKind.KM_FD_FILE, FdKind.KM_FD_DIRECTORY):
        fd = os.open(d.path, r.flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC) | os.O_CLOEXEC)
        if r.offset:
            try:
                os.lseek(fd, r.offset, os.SEEK_SET)
            except OSError:
                pass
        return fd
    if r.kind == FdKind.KM_FD_EVENTFD:
        return os.eventfd(r.value, os.EFD_CLOEXEC | (os.EFD_NONBLOCK if status & os.O_NONBLOCK else 0) |
                          (os.EFD_SEMAPHORE if r.type == os.EFD_SEMAPHORE else 0))
    if r.kind == FdKind.KM_FD_TIMERFD:
        fd = host_syscall(NR["timerfd_create"], r.value, os.O_CLOEXEC | (status & os.O_NONBLOCK))   # TFD_* are O_*
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd))
        return fd
    if r.kind == FdKind.KM_FD_LISTENER:
        return _listener(d)
    if r.kind == FdKind.KM_FD_SOCKET:
        return _socket(d)
    return None


def _with_status(fd: int, flags: int) -> int:
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & (os.O_NONBLOCK | os.O_APPEND))
    return fd


def _pipe_end(d: Descriptor, made: dict[tuple[int, bool], int]) -> int:
    """A pipe end: both ends are made when the first is met (the other end stays open only if the payload has
    it); the read end gets the bytes that were buffered."""
    r = d.record
    is_reader = r.flags & os.O_ACCMODE == os.O_RDONLY
    key = (r.value, is_reader)
    if key in made:
        return _with_status(os.dup(made[key]), r.flags)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    made[(r.value, True)], made[(r.value, False)] = read_end, write_end
    if is_reader and d.data:
        os.write(write_end, d.data)
    if r.peer < 0:
        log.info("fd %d: the other end of its pipe was outside the payload: %s", r.fd,
                 "end of file" if is_reader else "EPIPE")
        os.close(write_end if is_reader else read_end)
        made.pop((r.value, not is_reader))
    return _with_status(os.dup(made[key]), r.flags)


def _listener(d: Descriptor) -> int:
    r = d.record
    sock = socket.socket(r.domain, r.type, r.protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if r.domain == socket.AF_UNIX:
            _remove_stale_unix_socket(d.data)
        _bind(sock.fileno(), d.data)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return _with_status(sock.detach(), r.flags)


def _remove_stale_unix_socket(address: bytes) -> None:
    path = address[2:].split(b"\0", 1)[0]
    if path and os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)             # nobody listens there any more
        except OSError:
            pass
        finally:
            probe.close()


def _bind(fd: int, address: bytes) -> None:
    buf = ffi.new("char[]", address or b"\0")
    result = host_syscall(NR["bind"], fd, int(ffi.cast("uintptr_t", buf)), len(address))
    if result < 0:
        raise OSError(-result, os.strerror(-result))


def _socket(d: Descriptor) -> int:
    """A socket that was not listening: a connected stream comes back as a connection reset by its peer; a bound
    datagram socket is bound again, a connected one connected again (from a port the kernel chooses)."""
    r = d.record
    if r.connected and r.type == socket.SOCK_STREAM:
        return _with_status(_reset_stream(r.domain), r.flags)
    sock = socket.socket(r.domain, r.type, r.protocol)
    try:
        if not r.connected and _is_bound(r.domain, d.data):
            _bind(sock.fileno(), d.data)
        if r.connected and d.path:
            buf = ffi.new("char[]", d.path)
            host_syscall(NR["connect"], sock.fileno(), int(ffi.cast("uintptr_t", buf)), len(d.path))
    except OSError:
        sock.close()
        raise
    return _with_status(sock.detach(), r.flags)


def _is_bound(domain: int, address: bytes) -> bool:
    """getsockname of an unconnected socket names a port (inet) or a path (unix) only after a bind."""
    if domain in (socket.AF_INET, socket.AF_INET6):
        return len(address) >= 4 and struct.unpack_from(">H", address, 2)[0] != 0
    return len(address) > 2


def _reset_stream(domain: int) -> int:
    """A stream socket whose connection was reset: read gives ECONNRESET once, then end of file; write EPIPE."""
    if domain == socket.AF_UNIX:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs.close()
        return mine.detach()
    family = socket.AF_INET6 if domain == socket.AF_INET6 else socket.AF_INET
    loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((loopback, 0))
        listener.listen(1)
        mine = socket.socket(family, socket.SOCK_STREAM)
        mine.connect(listener.getsockname())
        theirs, _ = listener.accept()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()                       # SO_LINGER 0: the close sends RST
    return mine.detach()


def _epoll(d: Descriptor) -> int:
    """An epoll instance watching the same descriptors (already at their numbers) for the same events."""
    ep = host_syscall(NR["epoll_create1"], os.O_CLOEXEC)
    if ep < 0:
        raise OSError(-ep, os.strerror(-ep))
    size = ctypes.sizeof(km_epoll_item)
    for offset in range(0, len(d.data) - size + 1, size):
        item = km_epoll_item.from_buffer_copy(d.data, offset)
        event = ffi.new("char[]", struct.pack("<IQ", item.events, item.data))     # packed struct epoll_event
        result = host_syscall(NR["epoll_ctl"], ep, EPOLL_CTL_ADD, item.fd, int(ffi.cast("uintptr_t", event)))
        if result < 0:
            log.info("fd %d (epoll): fd %d not watched again (%s)", d.record.fd, item.fd, os.strerror(-result))
    return ep
