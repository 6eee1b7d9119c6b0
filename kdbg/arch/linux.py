"""The Linux x86-64 user ABI that the monitor and the core files both speak: the page size, the 64-bit word mask
siginfo_t (include/uapi/asm-generic/siginfo.h), the auxiliary vector and a mapping as /proc/PID/maps shows it. One
home, so a signal the monitor delivers and the NT_SIGINFO a core records cannot drift apart, nor the auxv the loader
writes and the one the debugger and the core reader read. Only the stdlib may be imported here.

siginfo_t is built here with struct at the offsets below (ctypes costs every km start ~1.5 ms to import); its
whole ctypes structure, for those that parse one field by field, is kdbg/arch/siginfo.py, and
tests/unit/test_arch_linux.py checks that both agree.
"""
from __future__ import annotations

import os
import struct
from typing import NamedTuple, Sequence

PAGE_SIZE = 4096
MASK64 = (1 << 64) - 1

SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6     # si_code: kill(), the kernel, tkill()
SI_QUEUE, SI_TIMER, SI_SIGIO = -1, -2, -5       # si_code: sigqueue(), a POSIX timer, queued SIGIO
SIGINFO_SIZE = 128                              # SI_MAX_SIZE
# si_signo, si_errno, si_code, then the _sifields union at 16 (__ARCH_SI_PREAMBLE_SIZE); the members km fills:
_HEAD = "<iii4x"
_KILL = struct.Struct(_HEAD + "iI")             # _kill: si_pid, si_uid
_SIGFAULT = struct.Struct(_HEAD + "Q")          # _sigfault: si_addr (void __user *)
_SIGCHLD = struct.Struct(_HEAD + "iIi")         # _sigchld: si_pid, si_uid, si_status (then si_utime, si_stime)
_TIMER = struct.Struct(_HEAD + "iiQ")           # _timer: si_tid, si_overrun, si_sigval (union sigval)
_CODE_AND_TID = struct.Struct("<8xi4xi")        # si_code, and _timer's si_tid


def _s32(value: int) -> int:
    """An int field as C's assignment stores it (ctypes wrapped such values too)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _pad(head: bytes) -> bytes:
    return head + bytes(SIGINFO_SIZE - len(head))


def make_siginfo(signo: int, code: int = SI_USER, addr: int | None = None, pid: int = 0, uid: int = 0,
                 errno: int = 0) -> bytes:
    """A siginfo_t as the kernel fills it: si_addr for a fault (`addr` given), else the sender's si_pid/si_uid."""
    if addr is not None:
        return _pad(_SIGFAULT.pack(_s32(signo), _s32(errno), _s32(code), addr & MASK64))
    return _pad(_KILL.pack(_s32(signo), _s32(errno), _s32(code), _s32(pid), uid & 0xFFFFFFFF))


def make_sigchld_info(code: int, pid: int, uid: int, status: int) -> bytes:
    """SIGCHLD's siginfo_t (kernel/signal.c do_notify_parent): the child, and how it changed (CLD_*, status)."""
    return _pad(_SIGCHLD.pack(17, 0, _s32(code), _s32(pid), uid & 0xFFFFFFFF, _s32(status)))


def make_timer_siginfo(signo: int, timer_id: int, overrun: int, value: int) -> bytes:
    """A POSIX timer's expiry (kernel/time/posix-timers.c): SI_TIMER, the timer, its overruns, its sigev_value."""
    return _pad(_TIMER.pack(_s32(signo), 0, SI_TIMER, _s32(timer_id), _s32(overrun), value & MASK64))


def is_timer_siginfo(info: bytes, timer_id: int) -> bool:
    """Whether a queued siginfo is this POSIX timer's expiry."""
    code, tid = _CODE_AND_TID.unpack_from(info.ljust(SIGINFO_SIZE, b"\0"))
    return code == SI_TIMER and tid == _s32(timer_id)


# The auxiliary vector's keys (include/uapi/linux/auxvec.h; AT_SYSINFO_EHDR and AT_MINSIGSTKSZ:
# arch/x86/include/uapi/asm/auxvec.h)
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 23, 25, 26, 31, 33, 51
_AUXV_ENTRY = struct.Struct("<QQ")              # Elf64_auxv_t: a_type, a_un.a_val


def parse_auxv(data: bytes) -> dict[int, int]:
    """An auxv image (a process's /proc/PID/auxv, NT_AUXV, qXfer:auxv:read) as a dict, its Elf64_auxv_t pairs up to
    AT_NULL (a later duplicate wins: the kernel writes none)."""
    entries = {}
    for key, value in _AUXV_ENTRY.iter_unpack(data[:len(data) // 16 * 16]):
        if key == AT_NULL:
            break
        entries[key] = value
    return entries


class MemoryRegion(NamedTuple):
    start: int
    end: int
    perms: str          # "rwx" with '-' for missing rights, as in /proc/pid/maps
    offset: int = 0     # file offset of `start` when backed by a file
    path: str = ""      # file name, "[heap]"-style pseudo-name, or "" for anonymous memory
    shared: bool = False    # MAP_SHARED ("s" in maps)
    dev: int = 0        # the file's st_dev and st_ino (0 for anonymous memory)
    inode: int = 0

    def is_file(self) -> bool:
        return bool(self.path) and not self.path.startswith("[")


def maps_line(region: MemoryRegion) -> str:
    """One line of /proc/PID/maps (fs/proc/task_mmu.c show_map_vma), without the newline."""
    major, minor = os.major(region.dev), os.minor(region.dev)
    head = f"{region.start:08x}-{region.end:08x} {region.perms}{'s' if region.shared else 'p'} " \
           f"{region.offset if region.is_file() else 0:08x} {major:02x}:{minor:02x} {region.inode} "
    return head.ljust(73) + region.path if region.path else head       # unnamed: the trailing space stays


def maps_text(regions: Sequence[MemoryRegion]) -> str:
    """The whole /proc/PID/maps of these regions (one per VMA, as the target keeps them)."""
    return "".join(maps_line(r) + "\n" for r in regions)
