"""kdbg/arch/linux.py packs siginfo_t with struct (no ctypes at km's start); the ctypes structure that
tests/unit/test_core_layouts.py checks against the C compiler must read back every field it packed."""
from __future__ import annotations

import pytest

from kdbg.arch import linux
from kdbg.arch.siginfo import siginfo_t


def parsed(info: bytes) -> siginfo_t:
    assert len(info) == linux.SIGINFO_SIZE == 128
    return siginfo_t.from_buffer_copy(info)


@pytest.mark.parametrize("pid,uid", [(0, 0), (4242, 1000), (-1, 0xFFFFFFFF)])
def test_sender_fields(pid: int, uid: int) -> None:
    info = parsed(linux.make_siginfo(10, linux.SI_TKILL, pid=pid, uid=uid, errno=3))
    assert (info.si_signo, info.si_errno, info.si_code) == (10, 3, linux.SI_TKILL)
    assert (info._sifields._kill.si_pid, info._sifields._kill.si_uid) == (pid, uid)


def test_fault_address_is_the_whole_word() -> None:
    info = parsed(linux.make_siginfo(11, 1, addr=-8))
    assert (info.si_signo, info.si_code, info._sifields._sigfault.si_addr) == (11, 1, linux.MASK64 - 7)
    assert info._sifields._sigfault.si_addr_lsb == 0


def test_sigchld_fields() -> None:
    info = parsed(linux.make_sigchld_info(1, 77, 5, 256))
    chld = info._sifields._sigchld
    assert (info.si_signo, info.si_code, chld.si_pid, chld.si_uid, chld.si_status) == (17, 1, 77, 5, 256)
    assert (chld.si_utime, chld.si_stime) == (0, 0)


def test_timer_fields_and_recognition() -> None:
    raw = linux.make_timer_siginfo(34, 3, 2, 0x1122334455667788)
    timer = parsed(raw)._sifields._timer
    assert (parsed(raw).si_code, timer.si_tid, timer.si_overrun, timer.si_sigval) == \
        (linux.SI_TIMER, 3, 2, 0x1122334455667788)
    assert linux.is_timer_siginfo(raw, 3) and not linux.is_timer_siginfo(raw, 4)
    assert not linux.is_timer_siginfo(linux.make_siginfo(34, linux.SI_USER, pid=3), 3)


def test_auxv_parsing_stops_at_at_null() -> None:
    data = (3).to_bytes(8, "little") + (0x400040).to_bytes(8, "little") + bytes(16) + \
        (9).to_bytes(8, "little") + (1).to_bytes(8, "little")
    assert linux.parse_auxv(data) == {linux.AT_PHDR: 0x400040}
    assert linux.parse_auxv(data[:8]) == {} and linux.parse_auxv(data[:24]) == {linux.AT_PHDR: 0x400040}


def test_auxv_of_this_process() -> None:
    """The kernel's own auxv (Python's): the keys mean what the table says."""
    with open("/proc/self/auxv", "rb") as f:
        auxv = linux.parse_auxv(f.read())
    assert auxv[linux.AT_PAGESZ] == linux.PAGE_SIZE and auxv[linux.AT_PHENT] == 56 and auxv[linux.AT_CLKTCK] == 100
