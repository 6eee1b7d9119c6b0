"""The one map between Linux x86-64 signal numbers and gdb's own signal numbering (enum gdb_signal).

RSP stop replies, C/S/vCont actions and QPassSignals carry gdb's numbers (include/gdb/signals.def), which differ
from Linux's above SIGTRAP; everything inside kdbg.target speaks Linux (asm-generic/signal.h).
"""
from __future__ import annotations

import enum


class GdbSignal(enum.IntEnum):
    """include/gdb/signals.def (the subset Linux can produce, plus the realtime ranges)."""

    NONE = 0
    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    EMT = 7
    FPE = 8
    KILL = 9
    BUS = 10
    SEGV = 11
    SYS = 12
    PIPE = 13
    ALRM = 14
    TERM = 15
    URG = 16
    STOP = 17
    TSTP = 18
    CONT = 19
    CHLD = 20
    TTIN = 21
    TTOU = 22
    IO = 23
    XCPU = 24
    XFSZ = 25
    VTALRM = 26
    PROF = 27
    WINCH = 28
    USR1 = 30
    USR2 = 31
    PWR = 32
    REALTIME_33 = 45      # REALTIME_33 .. REALTIME_63 are 45 .. 75
    REALTIME_32 = 77
    REALTIME_64 = 78      # REALTIME_64 .. REALTIME_127 are 78 .. 141
    UNKNOWN = 143


# Linux number -> gdb number for the classic signals (include/uapi/asm-generic/signal.h order).
_LINUX_TO_GDB: dict[int, GdbSignal] = {
    1: GdbSignal.HUP, 2: GdbSignal.INT, 3: GdbSignal.QUIT, 4: GdbSignal.ILL, 5: GdbSignal.TRAP,
    6: GdbSignal.ABRT, 7: GdbSignal.BUS, 8: GdbSignal.FPE, 9: GdbSignal.KILL, 10: GdbSignal.USR1,
    11: GdbSignal.SEGV, 12: GdbSignal.USR2, 13: GdbSignal.PIPE, 14: GdbSignal.ALRM, 15: GdbSignal.TERM,
    17: GdbSignal.CHLD, 18: GdbSignal.CONT, 19: GdbSignal.STOP, 20: GdbSignal.TSTP, 21: GdbSignal.TTIN,
    22: GdbSignal.TTOU, 23: GdbSignal.URG, 24: GdbSignal.XCPU, 25: GdbSignal.XFSZ, 26: GdbSignal.VTALRM,
    27: GdbSignal.PROF, 28: GdbSignal.WINCH, 29: GdbSignal.IO, 30: GdbSignal.PWR, 31: GdbSignal.SYS,
}
_GDB_TO_LINUX: dict[int, int] = {int(g): linux for linux, g in _LINUX_TO_GDB.items()}
SIGRTMIN, SIGRTMAX = 32, 64
SIGINT = 2          # Linux: what an interrupt (^C) reports when the target gives no signal of its own


def gdb_from_linux(signo: int) -> int:
    """gdb's number for a Linux signal; 0 stays 0; a number gdb has no name for (SIGSTKFLT) is UNKNOWN."""
    if signo == 0:
        return GdbSignal.NONE
    if signo in _LINUX_TO_GDB:
        return _LINUX_TO_GDB[signo]
    if signo == SIGRTMIN:
        return GdbSignal.REALTIME_32
    if SIGRTMIN < signo < SIGRTMAX:
        return GdbSignal.REALTIME_33 + (signo - 33)
    if signo == SIGRTMAX:
        return GdbSignal.REALTIME_64
    return GdbSignal.UNKNOWN


# gdb number -> Linux number for every gdb signal Linux can deliver (0 included), as plain ints: one dict lookup
# per signal, where a QProgramSignals list holds ~150 of them (gdb sends it while connecting).
_GDB_TO_LINUX_ALL: dict[int, int] = {
    0: 0, **_GDB_TO_LINUX, int(GdbSignal.REALTIME_32): SIGRTMIN, int(GdbSignal.REALTIME_64): SIGRTMAX,
    **{int(GdbSignal.REALTIME_33) + i: 33 + i for i in range(SIGRTMAX - 1 - 33 + 1)}}
# The same keyed by the hex text gdb writes (lower case, no leading zeros): QPassSignals/QProgramSignals items.
_GDB_HEX_TO_LINUX: dict[bytes, int] = {b"%x" % gdb: linux for gdb, linux in _GDB_TO_LINUX_ALL.items()}


def linux_from_gdb(gdb_signo: int) -> int:
    """The Linux number for one of gdb's; raises ValueError for a signal Linux cannot deliver (EMT, LOST...)."""
    try:
        return _GDB_TO_LINUX_ALL[gdb_signo]
    except KeyError:
        raise ValueError(f"gdb signal {gdb_signo} has no Linux x86-64 equivalent") from None


def linux_from_gdb_hex(item: bytes) -> int | None:
    """A signal list's item (gdb's number in hex) as a Linux number; None for a signal Linux cannot deliver.
    ValueError for an item that is not hex."""
    linux = _GDB_HEX_TO_LINUX.get(item)
    if linux is not None:
        return linux
    if not item or item.strip(b"0123456789abcdefABCDEF"):
        raise ValueError(f"not a hex number: {item[:32]!r}")
    return _GDB_TO_LINUX_ALL.get(int(item, 16))
