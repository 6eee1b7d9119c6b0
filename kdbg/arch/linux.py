"""The Linux x86-64 user ABI that the monitor and the core files both speak: the page size, the 64-bit word mask
and siginfo_t (include/uapi/asm-generic/siginfo.h). One home, so a signal the monitor delivers and the NT_SIGINFO
a core records cannot drift apart. Only the stdlib may be imported here.

The ctypes layouts are made on first use (siginfo_t and SIGINFO_SIZE are looked up through the module's
__getattr__): importing ctypes costs ~3 ms, and a run without signals, a debugger or a core never needs them.
"""
from __future__ import annotations

import functools
from typing import Any

PAGE_SIZE = 4096
MASK64 = (1 << 64) - 1
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6     # si_code: kill(), the kernel, tkill()


@functools.cache
def _siginfo_type() -> Any:
    import ctypes

    # ctypes' LittleEndianStructure/Union keep the layout right even if this ever runs on a big-endian host.
    c_short, c_int, c_uint, c_ulong = ctypes.c_int16, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64

    class _kill(ctypes.LittleEndianStructure):
        _fields_ = [("si_pid", c_int), ("si_uid", c_uint)]

    class _addr_bnd(ctypes.LittleEndianStructure):
        _fields_ = [("_lower", c_ulong), ("_upper", c_ulong)]

    class _bounds(ctypes.LittleEndianUnion):
        _fields_ = [("_addr_bnd", _addr_bnd), ("_pkey", c_uint)]

    class _sigfault(ctypes.LittleEndianStructure):
        """SIGSEGV/SIGBUS/SIGFPE/SIGILL: the faulting address (void __user *), then the MCE/MPX/PKU details."""

        _fields_ = [("si_addr", c_ulong), ("si_addr_lsb", c_short), ("_bounds", _bounds)]

    class _sifields(ctypes.LittleEndianUnion):
        # __ARCH_SI_PREAMBLE_SIZE is 16 on 64-bit, SI_MAX_SIZE 128: the union is int _pad[28].
        _fields_ = [("_pad", c_int * 28), ("_kill", _kill), ("_sigfault", _sigfault)]

    class siginfo_t(ctypes.LittleEndianStructure):
        """NT_SIGINFO: include/uapi/asm-generic/siginfo.h siginfo_t (128 bytes), the fields a core needs."""

        _fields_ = [("si_signo", c_int), ("si_errno", c_int), ("si_code", c_int), ("_sifields", _sifields)]

    return siginfo_t


def __getattr__(name: str) -> Any:
    if name == "siginfo_t":
        return _siginfo_type()
    if name == "SIGINFO_SIZE":
        import ctypes
        return ctypes.sizeof(_siginfo_type())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_siginfo(signo: int, code: int = SI_USER, addr: int | None = None, pid: int = 0, uid: int = 0,
                 errno: int = 0) -> bytes:
    """A siginfo_t as the kernel fills it: si_addr for a fault (`addr` given), else the sender's si_pid/si_uid."""
    info = _siginfo_type()(si_signo=signo, si_errno=errno, si_code=code)
    if addr is not None:
        info._sifields._sigfault.si_addr = addr & MASK64
    else:
        info._sifields._kill.si_pid, info._sifields._kill.si_uid = pid, uid
    return bytes(info)
