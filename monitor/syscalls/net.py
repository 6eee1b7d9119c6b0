"""Socket syscalls forwarded to the host kernel: sockaddrs and data buffers in place, msghdrs rebuilt with host
addresses, length words copied to km so that another guest thread cannot grow a buffer after it was checked.

Blocking calls (accept, connect, send*, recv*) go through host.blocking_host_syscall (_blocking): a kick retries
them, a guest signal cuts them short. New descriptors that land in km's range (>= KM_FD_BASE) are closed and
answered EMFILE.
"""
from __future__ import annotations

import contextlib
import errno
import struct
from typing import TYPE_CHECKING

from ..kvm.abi import ffi
from ..host_fds import KM_FD_BASE, lowest_number
from ..errors import GuestFault
from .args import addr_of, buf_in, buf_out, fd_arg, poison
from .dispatch import s32, syscall
from ..signals.delivery import ERESTARTSYS
from .fs import host_iovec, sigpipe_on_epipe
from .host import blocking_host_syscall, host_syscall, interruption
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

SOCKADDR_STORAGE = 128      # the kernel never reads or writes more of a sockaddr than this
UIO_MAXIOV = 1024
CONTROL_MAX = 1 << 16       # km's copy of received control data (SCM_RIGHTS' 253 descriptors need about 1 KiB)
MSGHDR = struct.Struct("<QI4xQQQQI4x")   # msg_name, msg_namelen, msg_iov, msg_iovlen, msg_control, ..len, msg_flags
MMSGHDR_SIZE = MSGHDR.size + 8           # struct mmsghdr: msghdr + unsigned msg_len + padding
CMSGHDR = struct.Struct("<QII")          # cmsg_len, cmsg_level, cmsg_type
SOL_SOCKET, SCM_RIGHTS, SO_RCVTIMEO, SO_SNDTIMEO, SO_PEERPIDFD = 1, 1, 20, 21, 77
SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF = 26, 51
MSG_CTRUNC, MSG_NOSIGNAL, MSG_CMSG_COMPAT = 0x8, 0x4000, 0x80000000
SOCK_CLOEXEC = 0o2000000


def new_fd(result: int) -> int:
    """A descriptor the host just created for the payload: one in km's range is closed and answered EMFILE (for
    accept, the connection is gone then, where Linux would have left it queued)."""
    if result >= KM_FD_BASE:
        host_syscall(NR["close"], result)
        return -errno.EMFILE
    return result


class AddrLen:
    """An (addr, int *addrlen) output pair, the length word held by km for the call and copied back after. An
    unreadable length word or address goes to the host as poison() and a negative length as it is: the host
    answers EFAULT or EINVAL where Linux does (for accept and recvfrom, after the call itself)."""

    def __init__(self, ctx: VcpuThread, addr: int, addrlen: int) -> None:
        self.ctx, self.addrlen, self.is_wanted = ctx, addrlen, bool(addr)
        self.host_len = ffi.new("int *")
        self.host_len_addr = addr_of(self.host_len)
        self.host_addr = 0
        if addr:
            try:
                length = struct.unpack("<i", ctx.mem.read(addrlen, 4))[0]
                ctx.mem.host_addr(addrlen, 4, write=True)
            except GuestFault:
                self.host_len_addr, length = poison(addrlen, 4), 0
            self.host_len[0] = length
            # a zero length still gets the full length back: any non-NULL address does, nothing is copied there
            self.host_addr = buf_out(ctx, addr, min(max(length, 0), SOCKADDR_STORAGE)) or addr_of(self.host_len)

    @property
    def args(self) -> tuple[int, int]:
        return (self.host_addr, self.host_len_addr) if self.is_wanted else (0, 0)

    def copy_back(self, result: int) -> int:
        if result >= 0 and self.is_wanted:
            self.ctx.mem.write(self.addrlen, struct.pack("<i", self.host_len[0]))
        return result


@contextlib.contextmanager
def _socket_first(fd: int):
    """Linux looks the socket up (EBADF, ENOTSOCK) before it reads a msghdr: an error from km's reading of one
    gives way to those."""
    try:
        yield
    except (GuestFault, OSError):
        st = ffi.new("char[144]")
        error = host_syscall(NR["fstat"], fd_arg(fd), addr_of(st))
        if error < 0:
            raise OSError(-error, "socket") from None
        if struct.unpack_from("<I", ffi.buffer(st), 24)[0] & 0o170000 != 0o140000:      # st_mode: S_IFSOCK
            raise OSError(errno.ENOTSOCK, "socket") from None
        raise


def _blocking(ctx: VcpuThread, nr: int, timeout_option: int, fd: int, *args: int) -> int:
    """blocking_host_syscall, cut short with sock_intr_errno's code: -ERESTARTSYS, or a plain -EINTR (never
    restarted, signal(7)) when the socket has a timeout (SO_RCVTIMEO for receiving and accept, SO_SNDTIMEO for
    sending and connect)."""
    return _intr_errno(blocking_host_syscall(ctx, nr, fd, *args), fd, timeout_option)


def _intr_errno(result: int, fd: int, timeout_option: int) -> int:
    if result == -ERESTARTSYS and _has_timeout(fd, timeout_option):
        return -errno.EINTR
    return result


def _has_timeout(fd: int, option: int) -> bool:
    timeval, size = ffi.new("int64_t[2]"), ffi.new("int *", 16)
    result = host_syscall(NR["getsockopt"], fd, SOL_SOCKET, option, addr_of(timeval), addr_of(size))
    return result == 0 and bool(timeval[0] or timeval[1])


def _sockaddr_in(ctx: VcpuThread, addr: int, addrlen: int) -> int:
    """A sockaddr the host reads: a length out of range goes as it is (the host answers EINVAL where Linux checks
    it), an unreadable address as poison()."""
    length = s32(addrlen)
    if not 0 <= length <= SOCKADDR_STORAGE:
        return poison(addr, SOCKADDR_STORAGE)
    return buf_in(ctx, addr, length) if addr else 0


@syscall("socket", descriptors=True)
def sys_socket(ctx: VcpuThread, domain: int, type_: int, protocol: int) -> int:
    return new_fd(host_syscall(NR["socket"], domain, type_, protocol))


@syscall("socketpair", descriptors=True)
def sys_socketpair(ctx: VcpuThread, domain: int, type_: int, protocol: int, sv: int) -> int:
    buf_out(ctx, sv, 8)
    pair = ffi.new("int[2]")
    result = host_syscall(NR["socketpair"], domain, type_, protocol, addr_of(pair))
    if result < 0:
        return result
    if max(pair[0], pair[1]) >= KM_FD_BASE:
        host_syscall(NR["close"], pair[0])
        host_syscall(NR["close"], pair[1])
        return -errno.EMFILE
    ctx.mem.write(sv, struct.pack("<ii", pair[0], pair[1]))
    return result


@syscall("bind")
def sys_bind(ctx: VcpuThread, fd: int, addr: int, addrlen: int) -> int:
    return host_syscall(NR["bind"], fd_arg(fd), _sockaddr_in(ctx, addr, addrlen), addrlen)


@syscall("listen")
def sys_listen(ctx: VcpuThread, fd: int, backlog: int) -> int:
    return host_syscall(NR["listen"], fd_arg(fd), backlog)


@syscall("accept4")
def sys_accept4(ctx: VcpuThread, fd: int, addr: int, addrlen: int, flags: int) -> int:
    peer = AddrLen(ctx, addr, addrlen)
    result = new_fd(_blocking(ctx, NR["accept4"], SO_RCVTIMEO, fd_arg(fd), *peer.args, flags))
    if result >= 0:
        result = lowest_number(result, bool(flags & SOCK_CLOEXEC))
    return peer.copy_back(result)


@syscall("accept")
def sys_accept(ctx: VcpuThread, fd: int, addr: int, addrlen: int) -> int:
    return sys_accept4(ctx, fd, addr, addrlen, 0)


@syscall("connect")
def sys_connect(ctx: VcpuThread, fd: int, addr: int, addrlen: int) -> int:
    """A blocking connect cut by a kick goes on in the host kernel; asking again waits for it (as Linux's own
    restart does), and EISCONN then means it completed while km was not looking."""
    args = (fd_arg(fd), _sockaddr_in(ctx, addr, addrlen), addrlen)
    result = host_syscall(NR["connect"], *args)
    if result == -errno.EINTR:
        leave = interruption(ctx)
        if leave is not None:
            result = leave
        else:
            result = blocking_host_syscall(ctx, NR["connect"], *args)
            if result == -errno.EISCONN:
                result = 0
    return _intr_errno(result, args[0], SO_SNDTIMEO)


def _broken_pipe(ctx: VcpuThread, result: int, flags: int) -> int:
    """SIGPIPE with EPIPE as for write(2), unless the call said MSG_NOSIGNAL."""
    return result if flags & MSG_NOSIGNAL else sigpipe_on_epipe(ctx, result)


@syscall("sendto")
def sys_sendto(ctx: VcpuThread, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    result = _blocking(ctx, NR["sendto"], SO_SNDTIMEO, fd_arg(fd), buf_in(ctx, buf, length), length, flags,
                       _sockaddr_in(ctx, addr, addrlen), addrlen if addr else 0)
    return _broken_pipe(ctx, result, flags)


@syscall("recvfrom")
def sys_recvfrom(ctx: VcpuThread, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    peer = AddrLen(ctx, addr, addrlen)
    result = _blocking(ctx, NR["recvfrom"], SO_RCVTIMEO, fd_arg(fd), buf_out(ctx, buf, length), length, flags,
                       *peer.args)
    return peer.copy_back(result)


@syscall("shutdown")
def sys_shutdown(ctx: VcpuThread, fd: int, how: int) -> int:
    return host_syscall(NR["shutdown"], fd_arg(fd), how)


@syscall("getsockname")
def sys_getsockname(ctx: VcpuThread, fd: int, addr: int, addrlen: int) -> int:
    name = AddrLen(ctx, addr, addrlen)
    return name.copy_back(host_syscall(NR["getsockname"], fd_arg(fd), *name.args))


@syscall("getpeername")
def sys_getpeername(ctx: VcpuThread, fd: int, addr: int, addrlen: int) -> int:
    name = AddrLen(ctx, addr, addrlen)
    return name.copy_back(host_syscall(NR["getpeername"], fd_arg(fd), *name.args))


@syscall("setsockopt")
def sys_setsockopt(ctx: VcpuThread, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    """A negative length and unreadable values go to the host as they are (EINVAL, EFAULT in Linux's order)."""
    length = s32(optlen)
    keep = None
    value = buf_in(ctx, optval, length) if length > 0 else optval and poison(optval, 1)
    if level == SOL_SOCKET and optname in (SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF) and length >= 16:
        try:
            count, filt = struct.unpack("<H6xQ", ctx.mem.read(optval, 16))
            keep = ffi.new("uint64_t[2]", [count, buf_in(ctx, filt, 8 * count)])    # struct sock_fprog, host filter
            value = addr_of(keep)
        except GuestFault:
            value = poison(optval, 16)
    return host_syscall(NR["setsockopt"], fd_arg(fd), level, optname, value, length)


@syscall("getsockopt", descriptors=True)        # SO_PEERPIDFD makes one (it never blocks)
def sys_getsockopt(ctx: VcpuThread, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    """km holds the length word; an unreadable one goes to the host as poison(), a negative one as it is."""
    host_len = ffi.new("int *")
    length_addr = addr_of(host_len)
    try:
        host_len[0] = length = struct.unpack("<i", ctx.mem.read(optlen, 4))[0]
        ctx.mem.host_addr(optlen, 4, write=True)
    except GuestFault:
        length, length_addr = 0, poison(optlen, 4)
    result = host_syscall(NR["getsockopt"], fd_arg(fd), level, optname,
                          buf_out(ctx, optval, max(length, 0)) if optval else 0, length_addr)
    if result >= 0 and level == SOL_SOCKET and optname == SO_PEERPIDFD and host_len[0] >= 4:
        pidfd = struct.unpack("<i", ctx.mem.read(optval, 4))[0]         # a new descriptor, Linux 6.5+
        if new_fd(pidfd) < 0:
            return -errno.EMFILE
    if result >= 0 and length_addr == addr_of(host_len):
        ctx.mem.write(optlen, struct.pack("<i", host_len[0]))
    return result


# ---- sendmsg / recvmsg --------------------------------------------------------------------------------------
class Msg:
    """A guest struct msghdr rebuilt for the host: name and iovec buffers in place, the control data copied (to
    check the descriptors passed with SCM_RIGHTS both ways), lengths held by km."""

    def __init__(self, ctx: VcpuThread, gva: int, receiving: bool) -> None:
        self.ctx, self.gva, self.receiving = ctx, gva, receiving
        name, namelen, iov, iovlen, control, controllen, _ = MSGHDR.unpack(ctx.mem.read(gva, MSGHDR.size))
        if receiving:       # writable, checked without a bounce copy (flushed after km's own writes, it undid them)
            ctx.mem.pieces(gva, MSGHDR.size, write=True)
        namelen = min(s32(namelen), SOCKADDR_STORAGE) if name else 0     # as __copy_msghdr does
        if namelen < 0:
            raise OSError(errno.EINVAL, "msg_namelen")
        if iovlen > UIO_MAXIOV:
            raise OSError(errno.EMSGSIZE, "msg_iovlen")
        if controllen > (1 << 31) - 1:
            raise OSError(errno.ENOBUFS, "msg_controllen")
        self.has_name = bool(name)
        host_name = (buf_out if receiving else buf_in)(ctx, name, namelen) if name else 0
        self.host = ffi.new("char[]", MSGHDR.size)
        if name and not host_name:
            host_name = addr_of(self.host)      # a zero msg_namelen: non-NULL (nothing is copied there), as given
        self.iov = host_iovec(ctx, iov, iovlen, receiving)
        self.control_gva = control if controllen else 0
        if receiving:
            ctx.mem.pieces(control, controllen, write=True)
            controllen = min(controllen, CONTROL_MAX)
            self.control = ffi.new("char[]", max(controllen, 1))
        else:
            data = _own_rights(ctx.mem.read(control, controllen)) if controllen else b""
            self.control = ffi.new("char[]", data or b"\0")
        MSGHDR.pack_into(ffi.buffer(self.host), 0, host_name, namelen, addr_of(self.iov), iovlen,
                         addr_of(self.control) if controllen else 0, controllen, 0)

    def copy_back(self, result: int) -> None:
        """What recvmsg reports back: msg_namelen, the control data and its length, msg_flags."""
        if result < 0 or not self.receiving:
            return
        _, namelen, _, _, _, controllen, flags = MSGHDR.unpack(ffi.buffer(self.host))
        data = bytes(ffi.buffer(self.control, controllen)) if self.control_gva else b""
        if data:
            shown = bytes(_hide_km_rights(bytearray(data)))
            flags |= MSG_CTRUNC if shown != data else 0
            self.ctx.mem.write(self.control_gva, shown)
        if self.has_name:
            self.ctx.mem.write(self.gva + 8, struct.pack("<I", namelen))
        self.ctx.mem.write(self.gva + 40, struct.pack("<QI", controllen, flags))


def _cmsgs(data: bytes):
    """(offset of the data, length of the data, level, type) of each cmsghdr (CMSG_NXTHDR's walk)."""
    offset = 0
    while offset + CMSGHDR.size <= len(data):
        length, level, type_ = CMSGHDR.unpack_from(data, offset)
        if length < CMSGHDR.size or offset + length > len(data):
            return
        yield offset + CMSGHDR.size, length - CMSGHDR.size, level, type_
        offset += (length + 7) & ~7


def _own_rights(data: bytes) -> bytes:
    """The payload may pass only its own descriptors: one of km's becomes BAD_FD (fd_arg), which the host refuses
    with EBADF."""
    out = bytearray(data)
    for start, length, level, type_ in _cmsgs(data):
        if level == SOL_SOCKET and type_ == SCM_RIGHTS:
            for pos in range(start, start + length - length % 4, 4):
                struct.pack_into("<i", out, pos, s32(fd_arg(struct.unpack_from("<i", data, pos)[0])))
    return bytes(out)


def _hide_km_rights(data: bytearray) -> bytearray:
    """Received descriptors that landed in km's range are closed and turned into -1 (and MSG_CTRUNC set)."""
    for start, length, level, type_ in _cmsgs(bytes(data)):
        if level == SOL_SOCKET and type_ == SCM_RIGHTS:
            for pos in range(start, start + length - length % 4, 4):
                fd = struct.unpack_from("<i", data, pos)[0]
                if fd >= KM_FD_BASE:
                    host_syscall(NR["close"], fd)
                    struct.pack_into("<i", data, pos, -1)
    return data


@syscall("sendmsg")
def sys_sendmsg(ctx: VcpuThread, fd: int, msg: int, flags: int) -> int:
    if flags & MSG_CMSG_COMPAT:           # refused before the socket is looked up, as Linux does
        return -errno.EINVAL
    with _socket_first(fd):
        host = Msg(ctx, msg, receiving=False)
    result = _blocking(ctx, NR["sendmsg"], SO_SNDTIMEO, fd_arg(fd), addr_of(host.host), flags)
    return _broken_pipe(ctx, result, flags)


@syscall("recvmsg")
def sys_recvmsg(ctx: VcpuThread, fd: int, msg: int, flags: int) -> int:
    if flags & MSG_CMSG_COMPAT:
        return -errno.EINVAL
    with _socket_first(fd):
        host = Msg(ctx, msg, receiving=True)
    result = _blocking(ctx, NR["recvmsg"], SO_RCVTIMEO, fd_arg(fd), addr_of(host.host), flags)
    host.copy_back(result)
    return result


def _mmsg(ctx: VcpuThread, vec: int, vlen: int, receiving: bool) -> tuple[list[Msg], object]:
    """A guest struct mmsghdr array as a host one (msg_len words are the host's until copied back)."""
    vlen = min(vlen, UIO_MAXIOV)
    msgs = [Msg(ctx, vec + i * MMSGHDR_SIZE, receiving) for i in range(vlen)]
    buf_out(ctx, vec, vlen * MMSGHDR_SIZE)
    host = ffi.new("char[]", max(vlen, 1) * MMSGHDR_SIZE)
    for i, m in enumerate(msgs):
        ffi.memmove(host + i * MMSGHDR_SIZE, m.host, MSGHDR.size)
    return msgs, host


def _mmsg_copy_back(ctx: VcpuThread, vec: int, msgs: list[Msg], host, result: int) -> None:
    for i in range(max(result, 0)):
        entry = bytes(ffi.buffer(host + i * MMSGHDR_SIZE, MMSGHDR_SIZE))
        if msgs[i].receiving:
            ffi.memmove(msgs[i].host, entry[:MSGHDR.size], MSGHDR.size)
            msgs[i].copy_back(0)
        ctx.mem.write(vec + i * MMSGHDR_SIZE + MSGHDR.size, entry[MSGHDR.size:MSGHDR.size + 4])


@syscall("sendmmsg")
def sys_sendmmsg(ctx: VcpuThread, fd: int, vec: int, vlen: int, flags: int) -> int:
    if flags & MSG_CMSG_COMPAT:
        return -errno.EINVAL
    with _socket_first(fd):
        msgs, host = _mmsg(ctx, vec, vlen & 0xFFFFFFFF, receiving=False)
    result = _blocking(ctx, NR["sendmmsg"], SO_SNDTIMEO, fd_arg(fd), addr_of(host), len(msgs), flags)
    _mmsg_copy_back(ctx, vec, msgs, host, result)
    return _broken_pipe(ctx, result, flags)


@syscall("recvmmsg")
def sys_recvmmsg(ctx: VcpuThread, fd: int, vec: int, vlen: int, flags: int, timeout: int) -> int:
    if flags & MSG_CMSG_COMPAT:
        return -errno.EINVAL
    if timeout:
        ctx.mem.read(timeout, 16)        # copied before the socket is looked up: EFAULT first
    with _socket_first(fd):
        msgs, host = _mmsg(ctx, vec, vlen & 0xFFFFFFFF, receiving=True)
    result = _blocking(ctx, NR["recvmmsg"], SO_RCVTIMEO, fd_arg(fd), addr_of(host), len(msgs), flags,
                       buf_out(ctx, timeout, 16) if timeout else 0)
    _mmsg_copy_back(ctx, vec, msgs, host, result)
    return result
