"""kdbg/breakpoints.py: int3 planting and shadowing over plain memory (the rules gdbserver's mem-break.c keeps)."""
from __future__ import annotations

import pytest

from kdbg.breakpoints import INT3, SoftwareBreakpoints


class Memory:
    def __init__(self, base: int, data: bytes) -> None:
        self.base, self.data = base, bytearray(data)

    def read(self, addr: int, size: int) -> bytes:
        if not (self.base <= addr and addr + size <= self.base + len(self.data)):
            raise LookupError(hex(addr))
        return bytes(self.data[addr - self.base:addr - self.base + size])

    def write(self, addr: int, data: bytes) -> None:
        if not (self.base <= addr and addr + len(data) <= self.base + len(self.data)):
            raise LookupError(hex(addr))
        self.data[addr - self.base:addr - self.base + len(data)] = data


@pytest.fixture
def mem() -> Memory:
    return Memory(0x1000, bytes(range(16)))


def test_insert_plants_int3_and_reads_hide_it(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    bps.insert(0x1004)
    assert mem.data[4] == INT3[0]
    assert 0x1004 in bps and len(bps) == 1
    assert bps.shadow(0x1000, mem.read(0x1000, 16)) == bytes(range(16))
    assert bps.shadow(0x1005, mem.read(0x1005, 2)) == bytes([5, 6])     # a read that misses it is untouched


def test_insert_twice_keeps_the_real_original(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    bps.insert(0x1004)
    bps.insert(0x1004)
    assert bps.planted() == {0x1004: b"\x04"}
    assert bps.remove(0x1004) and mem.data[4] == 4
    assert not bps.remove(0x1004)


def test_insert_at_a_bad_address_raises_the_callables_error(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    with pytest.raises(LookupError):
        bps.insert(0x9000)
    assert len(bps) == 0


def test_write_over_a_planted_byte_updates_the_original_and_keeps_the_int3(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    bps.insert(0x1002)
    stored = bps.write_through(0x1001, b"\xaa\xbb\xcc")
    assert stored == b"\xaa" + INT3 + b"\xcc"
    mem.write(0x1001, stored)
    assert bps.shadow(0x1000, mem.read(0x1000, 4)) == b"\x00\xaa\xbb\xcc"
    bps.remove(0x1002)
    assert mem.data[2] == 0xBB


def test_remove_all_restores_everything_and_forget_all_touches_nothing(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    for addr in (0x1001, 0x1003, 0x100F):
        bps.insert(addr)
    inherited = SoftwareBreakpoints(mem.read, mem.write, bps.planted())
    inherited.forget_all()
    assert mem.data.count(INT3[0]) == 3          # forget_all left memory alone
    bps.remove_all()
    assert bytes(mem.data) == bytes(range(16)) and len(bps) == 0


def test_remove_after_the_page_went_away_is_not_an_error(mem):
    bps = SoftwareBreakpoints(mem.read, mem.write)
    bps.insert(0x1001)
    mem.base = 0x5000          # the text was unmapped: the write fails, the record goes
    assert bps.remove(0x1001)
    assert len(bps) == 0


def test_a_late_trap_is_recognised_only_where_a_breakpoint_was_taken_out(mem):
    """kvm-pvm may deliver an int3's trap after the debugger removed that breakpoint: it is the breakpoint's
    (the thread re-runs the original byte), unless an int3 is still in memory there (the program's own)."""
    bps = SoftwareBreakpoints(mem.read, mem.write)
    bps.insert(0x1004)
    assert not bps.late_trap(0x1004)              # planted: an ordinary breakpoint hit
    bps.remove(0x1004)
    assert bps.late_trap(0x1004)
    assert not bps.late_trap(0x1005)              # never a breakpoint
    bps.insert(0x1004)
    assert not bps.late_trap(0x1004)
    bps.remove(0x1004)
    mem.data[4] = INT3[0]                         # the program wrote its own int3 there since
    assert not bps.late_trap(0x1004)
    mem.data[4] = 4
    bps.forget_all()                              # exec: another program's memory
    assert not bps.late_trap(0x1004)
