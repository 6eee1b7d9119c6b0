"""The Linux x86-64 user ABI that the monitor and the core files both speak: the page size, the 64-bit word mask
and siginfo_t (include/uapi/asm-generic/siginfo.h). One home, so a signal the monitor delivers and the NT_SIGINFO
a core records cannot drift apart. Only the stdlib may be imported here.
"""
from __future__ import annotations

import ctypes

PAGE_SIZE = 4096
MASK64 = (1 << 64) - 1

# ctypes' LittleEndianStructure/Union keep the layout right even if this ever runs on a big-endian host.
_Struct = ctypes.LittleEndianStructure
_Union = ctypes.LittleEndianUnion
c_short, c_int, c_uint, c_ulong = ctypes.c_int16, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64


class _kill(_Struct):
    _fields_ = [("si_pid", c_int), ("si_uid", c_uint)]


class _addr_bnd(_Struct):
    _fields_ = [("_lower", c_ulong), ("_upper", c_ulong)]


class _bounds(_Union):
    _fields_ = [("_addr_bnd", _addr_bnd), ("_pkey", c_uint)]


class _sigfault(_Struct):
    """SIGSEGV/SIGBUS/SIGFPE/SIGILL: the faulting address (void __user *), then the MCE/MPX/PKU details."""

    _fields_ = [("si_addr", c_ulong), ("si_addr_lsb", c_short), ("_bounds", _bounds)]


class _timer(_Struct):
    """POSIX timers: the timer's id, its overrun count, and the sigev_value (union sigval)."""

    _fields_ = [("si_tid", c_int), ("si_overrun", c_int), ("si_sigval", c_ulong)]


class _rt(_Struct):
    """sigqueue() and the other negative si_codes: the sender, and the value it sent (union sigval)."""

    _fields_ = [("si_pid", c_int), ("si_uid", c_uint), ("si_sigval", c_ulong)]


class _sigchld(_Struct):
    _fields_ = [("si_pid", c_int), ("si_uid", c_uint), ("si_status", c_int), ("si_utime", c_ulong),
                ("si_stime", c_ulong)]


class _sigpoll(_Struct):
    _fields_ = [("si_band", c_ulong), ("si_fd", c_int)]


class _sigsys(_Struct):
    """SIGSYS from seccomp: where the call was made, its number and audit arch."""

    _fields_ = [("_call_addr", c_ulong), ("_syscall", c_int), ("_arch", c_uint)]


class _sifields(_Union):
    # __ARCH_SI_PREAMBLE_SIZE is 16 on 64-bit, SI_MAX_SIZE 128: the union is int _pad[28].
    _fields_ = [("_pad", c_int * 28), ("_kill", _kill), ("_timer", _timer), ("_rt", _rt), ("_sigchld", _sigchld),
                ("_sigfault", _sigfault), ("_sigpoll", _sigpoll), ("_sigsys", _sigsys)]


class siginfo_t(_Struct):
    """NT_SIGINFO: include/uapi/asm-generic/siginfo.h siginfo_t (128 bytes), the fields a core needs."""

    _fields_ = [("si_signo", c_int), ("si_errno", c_int), ("si_code", c_int), ("_sifields", _sifields)]


SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6     # si_code: kill(), the kernel, tkill()
SI_QUEUE, SI_TIMER, SI_SIGIO = -1, -2, -5       # si_code: sigqueue(), a POSIX timer, queued SIGIO
SIGINFO_SIZE = ctypes.sizeof(siginfo_t)


def make_siginfo(signo: int, code: int = SI_USER, addr: int | None = None, pid: int = 0, uid: int = 0,
                 errno: int = 0) -> bytes:
    """A siginfo_t as the kernel fills it: si_addr for a fault (`addr` given), else the sender's si_pid/si_uid."""
    info = siginfo_t(si_signo=signo, si_errno=errno, si_code=code)
    if addr is not None:
        info._sifields._sigfault.si_addr = addr & MASK64
    else:
        info._sifields._kill.si_pid, info._sifields._kill.si_uid = pid, uid
    return bytes(info)


def make_sigchld_info(code: int, pid: int, uid: int, status: int) -> bytes:
    """SIGCHLD's siginfo_t (kernel/signal.c do_notify_parent): the child, and how it changed (CLD_*, status)."""
    info = siginfo_t(si_signo=17, si_code=code)
    chld = info._sifields._sigchld
    chld.si_pid, chld.si_uid, chld.si_status = pid, uid, status
    return bytes(info)


def make_timer_siginfo(signo: int, timer_id: int, overrun: int, value: int) -> bytes:
    """A POSIX timer's expiry (kernel/time/posix-timers.c): SI_TIMER, the timer, its overruns, its sigev_value."""
    info = siginfo_t(si_signo=signo, si_code=SI_TIMER)
    timer = info._sifields._timer
    timer.si_tid, timer.si_overrun, timer.si_sigval = timer_id, overrun, value
    return bytes(info)


def is_timer_siginfo(info: bytes, timer_id: int) -> bool:
    """Whether a queued siginfo is this POSIX timer's expiry."""
    parsed = siginfo_t.from_buffer_copy(info.ljust(SIGINFO_SIZE, b"\0"))
    return parsed.si_code == SI_TIMER and parsed._sifields._timer.si_tid == timer_id
