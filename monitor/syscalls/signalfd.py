"""signalfd and signalfd4 (fs/signalfd.c): a descriptor that reads the payload's pending signals of its mask as
struct signalfd_siginfo records.

Guest signals are km's bookkeeping (monitor/signals/), so a host signalfd would never see them. A signalfd is a host
pipe instead: the payload holds its read end, so poll, select, epoll, dup, fcntl, close and fork's sharing are
the host's; km writes one byte into it while a signal of the mask is pending and drains it when none is
(SignalFds.refresh, called by SignalState wherever a queue changes), so readiness is the host's too. A read is
served by km: it dequeues as Linux's signalfd_dequeue does (the thread's own queue, then the process's) and
blocks as rt_sigtimedwait does, this thread chosen for the mask's signals while it waits.
Departures, each invisible to a program that reads and polls: the descriptor is a FIFO to fstat (Linux: an
anon inode; fcntl's F_GETFL and readlink of /proc/self/fd/N answer as Linux does), readiness counts a signal
pending for any thread (Linux: the polling one's or the process's), and a signalfd kept across an execve
that re-executes km (under a debugger) stops reading signals; one kept across an execve in the running km
(process/exec_in_process.py) goes on reading them.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from typing import TYPE_CHECKING

from kdbg.arch.linux import SI_KERNEL, SI_SIGIO, SI_TIMER, SI_USER

from ..host_fds import GATE, KM_FD_BASE, aside, high_fd, late_import, payload_fds
from ..signals.delivery import ERESTARTSYS, UNBLOCKABLE, PendingSignal
from .args import new_fd
from .dispatch import s32, syscall
from .signal import sleep_until_signal

if TYPE_CHECKING:
    from ..signals.delivery import SignalState
    from ..vcpu.loop import VcpuThread

SFD_CLOEXEC, SFD_NONBLOCK = os.O_CLOEXEC, os.O_NONBLOCK
SIGSET_SIZE = 8
# struct signalfd_siginfo (include/uapi/linux/signalfd.h): signo, errno, code, pid, uid, fd, tid, band, overrun,
# trapno, status, int, ptr, utime, stime, addr, addr_lsb, pad, syscall, call_addr, arch, 28 bytes of padding
SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")
# siginfo_layout()'s per-signal si_code limits (NSIGILL...), for the signals whose kernel codes carry fields
FAULT_LIMITS = {4: 11, 8: 15, 11: 10, 7: 5, 5: 6}           # SIGILL, SIGFPE, SIGSEGV, SIGBUS, SIGTRAP
SIGCHLD, SIGPOLL, SIGSYS, NSIGCHLD, NSIGPOLL, NSIGSYS = 17, 29, 31, 6, 6, 2


def signalfd_siginfo(raw: bytes) -> bytes:
    """fs/signalfd.c signalfd_copyinfo: the siginfo_t fields of its layout (siginfo_layout) into their ssi_*."""
    siginfo_t = late_import("kdbg.arch.siginfo").siginfo_t     # ctypes: only once a payload reads a signalfd
    info = siginfo_t.from_buffer_copy(raw)
    signo, code, u = info.si_signo, info.si_code, info._sifields
    out = dict.fromkeys(("pid", "uid", "fd", "tid", "band", "overrun", "status", "int_", "ptr", "utime", "stime",
                         "addr", "addr_lsb", "syscall", "call_addr", "arch"), 0)
    kill = dict(pid=u._kill.si_pid, uid=u._kill.si_uid)
    poll = dict(band=u._sigpoll.si_band, fd=u._sigpoll.si_fd)
    if SI_USER < code < SI_KERNEL:
        if signo in FAULT_LIMITS and code <= FAULT_LIMITS[signo]:
            out.update(addr=u._sigfault.si_addr, addr_lsb=u._sigfault.si_addr_lsb & 0xFFFF)
        elif signo == SIGCHLD and code <= NSIGCHLD:
            c = u._sigchld
            out.update(kill, status=c.si_status, utime=c.si_utime, stime=c.si_stime)
        elif signo == SIGSYS and code <= NSIGSYS:
            out.update(call_addr=u._sigsys._call_addr, syscall=u._sigsys._syscall, arch=u._sigsys._arch)
        elif code <= NSIGPOLL:
            out.update(poll)
        else:
            out.update(kill)
    elif code == SI_TIMER:
        t = u._timer
        out.update(tid=t.si_tid, overrun=t.si_overrun, ptr=t.si_sigval, int_=t.si_sigval & 0xFFFFFFFF)
    elif code == SI_SIGIO:
        out.update(poll)
    elif code < 0:
        out.update(kill, ptr=u._rt.si_sigval, int_=u._rt.si_sigval & 0xFFFFFFFF)
    else:
        out.update(kill)
    return SIGNALFD_SIGINFO.pack(signo, info.si_errno, code, out["pid"] & 0xFFFFFFFF, out["uid"], out["fd"],
                                 out["tid"] & 0xFFFFFFFF, out["band"] & 0xFFFFFFFF, out["overrun"] & 0xFFFFFFFF, 0,
                                 out["status"], s32(out["int_"]), out["ptr"], out["utime"], out["stime"],
                                 out["addr"], out["addr_lsb"], 0, out["syscall"], out["call_addr"], out["arch"])


class SignalFd:
    """One signalfd: its mask, and km's own ends of its pipe (each its own open file description, non-blocking,
    so the payload's fcntl on its descriptor never changes them)."""

    def __init__(self, mask: int, guest_fd: int, writer: int) -> None:
        self.mask = mask
        self.reader = high_fd(os.open(f"/proc/self/fd/{guest_fd}", os.O_RDONLY | os.O_NONBLOCK))
        self.writer = high_fd(writer)
        fcntl.fcntl(self.writer, fcntl.F_SETFL, os.O_NONBLOCK)
        self.is_ready = False

    def show(self, ready: bool) -> None:
        """Make the payload's end readable or not."""
        if ready == self.is_ready:
            return
        if ready:
            os.write(self.writer, b"!")
        else:
            try:
                while os.read(self.reader, 64):
                    pass
            except BlockingIOError:
                pass
        self.is_ready = ready

    def close(self) -> None:
        for fd in (self.reader, self.writer):
            os.close(fd)


class SignalFds:
    """A process's signalfds, by the identity of their pipe (the payload may dup, close and fork them freely)."""

    def __init__(self) -> None:
        self.by_pipe: dict[tuple[int, int], SignalFd] = {}

    @staticmethod
    def _key(fd: int) -> tuple[int, int] | None:
        if not 0 <= fd < KM_FD_BASE:
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def find(self, fd: int) -> SignalFd | None:
        """The signalfd behind a payload descriptor, or None for any other descriptor (with none open, no fstat:
        read, write, readv and close ask this on every call once the payload has made a signalfd)."""
        if not self.by_pipe:
            return None
        key = self._key(fd)
        return None if key is None else self.by_pipe.get(key)

    def key_of(self, fd: int) -> tuple[int, int] | None:
        """The pipe identity of a payload descriptor that is a signalfd (taken before it is closed)."""
        if not self.by_pipe:
            return None
        key = self._key(fd)
        return key if key in self.by_pipe else None

    def create(self, mask: int, flags: int) -> int:
        """A new signalfd: the payload's descriptor, or -EMFILE. The pipe's other end and km's reopen of the
        payload's are km's, moved to its range at once (host_fds.GATE)."""
        with GATE.km():
            reader, writer = os.pipe2(flags & (os.O_CLOEXEC | os.O_NONBLOCK))
            fd = new_fd(reader)
            if fd < 0:
                os.close(writer)
                return fd
            self._add(fd, mask, writer)
        return fd

    def _add(self, guest_fd: int, mask: int, writer: int) -> SignalFd:
        key = self._key(guest_fd)
        assert key is not None
        self.by_pipe[key] = sfd = SignalFd(mask, guest_fd, writer)
        return sfd

    def forget_if_closed(self, key: tuple[int, int]) -> None:
        """After the payload closed a descriptor of a signalfd: once none of its descriptors is left, km's ends
        of the pipe go too (a program that makes and closes signalfds in a loop must not use up km's)."""
        sfd = self.by_pipe.get(key)
        if sfd is None:
            return
        for fd in aside(payload_fds):       # listdir's descriptor out of the payload's way
            if self._key(fd) == key:
                return
        del self.by_pipe[key]
        sfd.close()

    def refresh(self, state: SignalState) -> None:
        """Each signalfd readable exactly while one of its signals is pending (called under state.lock)."""
        pending = 0
        for queue in [state.shared_pending] + [own.pending for own in state.per_thread.values()]:
            for p in queue:
                pending |= 1 << (p.signo - 1)
        for sfd in self.by_pipe.values():
            sfd.show(bool(pending & sfd.mask))

    def after_fork(self) -> SignalFds:
        """In a forked km: the child's signalfds read the child's signals (fs/signalfd.c reads `current`), so each
        gets a pipe of its own, put in place of every payload descriptor that held the parent's."""
        fresh = SignalFds()
        if not self.by_pipe:
            return fresh
        renewed: dict[int, int] = {}            # id of the parent's -> the child's first descriptor of it
        for fd in payload_fds():
            old = self.by_pipe.get(self._key(fd) or (-1, -1))
            if old is None:
                continue
            status = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
            inheritable = not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            first = renewed.get(id(old))
            if first is None:
                reader, writer = os.pipe2(os.O_CLOEXEC)
                os.dup2(reader, fd, inheritable=inheritable)
                fresh._add(fd, old.mask, writer)
                renewed[id(old)] = fd
            else:                                   # another descriptor of it: a description of its own
                reader = os.open(f"/proc/self/fd/{first}", os.O_RDONLY | os.O_CLOEXEC)
                os.dup2(reader, fd, inheritable=inheritable)
            os.close(reader)
            fcntl.fcntl(fd, fcntl.F_SETFL, status)
        for sfd in self.by_pipe.values():
            sfd.close()
        return fresh


def signalfd_link(ctx: VcpuThread, proc_fd: re.Match[bytes]) -> bytes | None:
    """What readlink of /proc/self/fd/N (args.proc_fd_path's parse) shows for a signalfd, as on Linux (an anon
    inode), not km's pipe; None for any other descriptor or path."""
    signalfds = ctx.proc.signals.signalfds
    whose, info, number, rest = proc_fd.groups()
    if signalfds is None or info or rest or whose not in (b"self", b"thread-self", str(ctx.proc.pid).encode()):
        return None
    return b"anon_inode:[signalfd]" if signalfds.find(int(number)) is not None else None


def read_signalfd(ctx: VcpuThread, sfd: SignalFd, fd: int, count: int) -> bytes | int:
    """signalfd_read: as many records as `count` bytes hold (EINVAL for none), blocking for the first one only
    unless the descriptor is non-blocking; a signal the thread takes meanwhile cuts the wait short (ERESTARTSYS).
    The records, or -errno; the caller copies them to the payload (a signal dequeued is gone, as in Linux, even
    if that copy faults)."""
    room = count // SIGNALFD_SIGINFO.size
    if not room:
        return -errno.EINVAL
    got: list[PendingSignal] = []
    while len(got) < room:
        pending = ctx.proc.signals.dequeue(ctx, lambda p: sfd.mask >> (p.signo - 1) & 1)
        if pending is None and not got:
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
                return -errno.EAGAIN
            waited = sleep_until_signal(ctx, None, sfd.mask, interrupted=ERESTARTSYS)
            if isinstance(waited, int):
                return waited if waited else -ERESTARTSYS
            pending = waited                # taken by sleep_until_signal, the signalfds refreshed
        if pending is None:
            break
        got.append(pending)
    return b"".join(signalfd_siginfo(p.info) for p in got)


@syscall("signalfd4")
def sys_signalfd4(ctx: VcpuThread, fd: int, mask_ptr: int, sizemask: int, flags: int) -> int:
    """do_signalfd4's order: the size, the mask (EFAULT), the flags; -1 makes a descriptor, another fd must be a
    signalfd (EBADF, else EINVAL) whose mask is replaced. SIGKILL and SIGSTOP are never read."""
    if sizemask != SIGSET_SIZE:
        return -errno.EINVAL
    mask = struct.unpack("<Q", ctx.mem.read(mask_ptr, SIGSET_SIZE))[0] & ~UNBLOCKABLE
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        return -errno.EINVAL
    state = ctx.proc.signals
    fd = s32(fd)
    with state.lock:
        if state.signalfds is None:
            state.signalfds = SignalFds()
        table = state.signalfds
        if fd != -1:
            sfd = table.find(fd)
            if sfd is None:
                return -errno.EBADF if not _is_open(fd) else -errno.EINVAL
            sfd.mask = mask
        else:
            fd = table.create(mask, flags)
            if fd < 0:
                return fd
        state.refresh_signalfds()
    return fd


def _is_open(fd: int) -> bool:
    if not 0 <= fd < KM_FD_BASE:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


@syscall("signalfd")
def sys_signalfd(ctx: VcpuThread, fd: int, mask_ptr: int, sizemask: int) -> int:
    return sys_signalfd4(ctx, fd, mask_ptr, sizemask, 0)
