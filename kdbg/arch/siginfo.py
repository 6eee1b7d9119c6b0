"""siginfo_t (include/uapi/asm-generic/siginfo.h) as a ctypes structure, for those that read one field by field:
a signalfd's read (monitor/syscalls/signalfd.py) and the core's NT_SIGINFO (kdbg/core/layouts.py). The monitor
builds siginfos with kdbg/arch/linux.py's packers, without importing ctypes at start. Only the stdlib may be
imported here.
"""
from __future__ import annotations

import ctypes

from kdbg.arch.linux import SIGINFO_SIZE

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


assert ctypes.sizeof(siginfo_t) == SIGINFO_SIZE
