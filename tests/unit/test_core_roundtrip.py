"""write_core → CoreTarget on hand-made targets: every register, memory with holes, notes, and write failures."""
from __future__ import annotations

import ctypes
import os
import struct
import time
from dataclasses import dataclass, field

import pytest

from kdbg.arch import x86_64
from kdbg.arch.x86_64 import REGISTERS, zero_registers
from kdbg.core import layouts, writer
from kdbg.core.errors import CoreError
from kdbg.core.reader import CoreTarget
from kdbg.core.writer import write_core
from harness.fake_target import StaticTarget
from kdbg.target import GuestMemoryError, MemoryRegion, StopEvent, StopReason, Target

SIGSEGV, SIGABRT = 11, 6
TEXT, DATA, HOLE, RESERVED, BIG = 0x400000, 0x600000, 0x601000, 0x700000, 0x10000000


def _registers(seed: int) -> dict[str, int]:
    """Every register of the arch table with a distinct value the x87 tag rebuild keeps (all st valid)."""
    regs = zero_registers()
    for index, reg in enumerate(REGISTERS):
        regs[reg.name] = (0x0102030405060708090A0B0C0D0E0F10 * (seed + index)) & ((1 << reg.bits) - 1)
    for i in range(8):                           # normal numbers: exponent 0x3fff + i, integer bit set
        regs[f"st{i}"] = ((0x3FFF + i + seed) << 64) | (1 << 63) | (seed * 1000 + i)
    regs.update(ftag=0, fstat=0x0020, fctrl=0x037F, fop=0x7FF & (seed * 77), fiseg=0x33, foseg=0x2B,
                fioff=0x401234 + seed, fooff=0x7FFF1000 + seed, mxcsr=0x1F80 | seed, eflags=0x10246,
                cs=0x33, ss=0x2B, ds=0, es=0, fs=0, gs=0, orig_rax=2**64 - 1)
    return regs


@dataclass
class MappedTarget(StaticTarget):
    """A StaticTarget whose mappings may be file-backed, reserved (---) or partly unreadable."""

    regions: list[MemoryRegion] = field(default_factory=list)
    unreadable: set[int] = field(default_factory=set)     # page addresses read_memory refuses
    signal_info: dict[int, bytes] = field(default_factory=dict)

    def mappings(self):
        return self.regions

    def read_memory(self, addr, size):
        for page in range(addr & ~0xFFF, addr + size, 0x1000):
            if page in self.unreadable:
                raise GuestMemoryError(addr, size)
        for region in self.regions:
            if region.start <= addr and addr + size <= region.end and region.perms != "---":
                data = self.memory.get(region.start, b"")[addr - region.start:addr - region.start + size]
                return data.ljust(size, b"\0")
        raise GuestMemoryError(addr, size)

    def siginfo(self, tid):
        return self.signal_info.get(tid, b"")


def _auxv(entries: dict[int, int]) -> bytes:
    return b"".join(struct.pack("<QQ", k, v) for k, v in entries.items())


@pytest.fixture
def target() -> MappedTarget:
    text = bytes(range(256)) * 32                       # two pages
    data = b"hello, core" + bytes(0x1000 - 11)
    return MappedTarget(
        regs={100: _registers(1), 101: _registers(2), 102: _registers(3)},
        memory={TEXT: text, DATA: data, HOLE: b"\x55" * 0x3000},
        event=StopEvent(101, StopReason.SIGNAL, SIGSEGV),
        auxv_data=_auxv({layouts.AT_PHDR: TEXT + 64, layouts.AT_ENTRY: TEXT + 0x100}),
        exe="/payloads/prog.km", process_id=100,
        regions=[MemoryRegion(TEXT, TEXT + 0x2000, "r-x", 0, "/payloads/prog.km"),
                 MemoryRegion(DATA, DATA + 0x1000, "rw-", 0x2000, "/payloads/prog.km"),
                 MemoryRegion(HOLE, HOLE + 0x3000, "rw-", 0, "[heap]"),
                 MemoryRegion(RESERVED, RESERVED + 0x100000, "---")],
        unreadable={HOLE + 0x1000})


def _write_and_read(target: Target, tmp_path, **kw) -> CoreTarget:
    path = tmp_path / "kmcore"
    write_core(target, path, **kw)
    return CoreTarget(path)


def test_every_register_of_every_thread_round_trips(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        for tid in (100, 101, 102):
            assert core.registers(tid) == target.regs[tid]


def test_each_threads_registers_are_decoded_once(target, tmp_path):
    """A core's registers never change: each thread's dict is made once, so the stub's `g` memo (the dict it last
    encoded) answers gdb's repeated `g` of one thread without encoding again."""
    from kdbg.rsp import registers
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        first = core.registers(100)
        assert core.registers(100) is first and core.registers(101) is not first
        assert core.registers(101) == target.regs[101]
        reply = registers.encode_registers(first)
        assert registers.encode_registers(core.registers(100)) is reply


def test_the_crashing_thread_comes_first_with_the_signal(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        assert list(core.threads()) == [101, 100, 102]       # from the target's stop event
        assert core.stop_event(101) == StopEvent(101, StopReason.SIGNAL, SIGSEGV)
        assert core.stop_event(100).reason is StopReason.INTERRUPT
        assert core.pid() == 100
    with _write_and_read(target, tmp_path, signal=SIGABRT, crashing_tid=102) as core:
        assert list(core.threads()) == [102, 100, 101]
        assert core.stop_event(102).signal == SIGABRT


def test_memory_round_trips_with_zeros_for_unreadable_pages(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        assert core.read_memory(TEXT, 0x2000) == target.memory[TEXT]
        assert core.read_memory(DATA, 11) == b"hello, core"
        assert core.read_memory(HOLE, 0x3000) == b"\x55" * 0x1000 + bytes(0x1000) + b"\x55" * 0x1000
        assert core.read_memory(TEXT + 0x1FFC, 4) == target.memory[TEXT][-4:]
        with pytest.raises(GuestMemoryError):
            core.read_memory(RESERVED, 16)                # PROT_NONE: mapped, not dumped
        with pytest.raises(GuestMemoryError):
            core.read_memory(TEXT + 0x1FFC, 8)            # runs past the mapping


def test_mappings_keep_permissions_and_file_names(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        # "[heap]" names no file: NT_FILE leaves it out, as the kernel's does, so it comes back anonymous.
        assert list(core.mappings()) == [r if r.path != "[heap]" else MemoryRegion(r.start, r.end, r.perms)
                                         for r in target.regions]
        assert core.exe_path() == "/payloads/prog.km"     # the NT_FILE mapping holding AT_ENTRY


def test_prot_none_reservations_take_no_space_in_the_file(target, tmp_path):
    write_core(target, tmp_path / "kmcore", signal=SIGSEGV)
    assert os.path.getsize(tmp_path / "kmcore") < 0x10000


def test_siginfo_is_the_targets_or_the_kernels_for_a_signal_without_sender(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        info = layouts.siginfo_t.from_buffer_copy(core.siginfo(101))
        assert (info.si_signo, info.si_code) == (SIGSEGV, layouts.SI_KERNEL)
        assert core.siginfo(100) == b""
    fault = layouts.siginfo_t(si_signo=SIGSEGV, si_code=1)
    fault._sifields._sigfault.si_addr = 0xDEAD000
    target.signal_info[101] = bytes(fault)
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        assert core.siginfo(101) == bytes(fault)


def test_auxv_and_process_info(target, tmp_path):
    with _write_and_read(target, tmp_path, signal=SIGSEGV) as core:
        assert core.auxv() == target.auxv_data + bytes(16)     # the kernel's copy ends with AT_NULL
        assert core.thread_name(101) == "prog.km"


def test_a_target_that_fails_every_call_still_gives_a_core(tmp_path):
    class Broken(StaticTarget):
        def auxv(self):
            raise GuestMemoryError(0, 8)

        def mappings(self):
            return [MemoryRegion(0x1000, 0x3000, "rw-")]

    with _write_and_read(Broken(regs={1: {"rip": 0x1234}}), tmp_path, signal=SIGSEGV) as core:
        assert core.registers(1)["rip"] == 0x1234
        assert core.registers(1)["fctrl"] == 0x37F        # omitted registers: reset state
        assert core.read_memory(0x1000, 0x2000) == bytes(0x2000)
        assert core.auxv() == bytes(16)


def test_untouched_memory_becomes_a_file_hole(tmp_path):
    size = 256 << 20
    target = MappedTarget(regs={1: _registers(0)}, memory={BIG: b"start"}, regions=[
        MemoryRegion(BIG, BIG + size, "rw-")])
    started = time.monotonic()
    write_core(target, tmp_path / "kmcore", signal=SIGSEGV)
    elapsed = time.monotonic() - started
    stat = os.stat(tmp_path / "kmcore")
    assert stat.st_size > size and stat.st_blocks * 512 <= (2 << 20), "zero chunks were written out"
    assert elapsed < 10
    with CoreTarget(tmp_path / "kmcore") as core:
        assert core.read_memory(BIG, 5) == b"start" and core.read_memory(BIG + size - 4, 4) == bytes(4)


def test_more_segments_than_e_phnum_holds_use_pn_xnum(tmp_path):
    regions = [MemoryRegion(0x100000 + 0x2000 * i, 0x101000 + 0x2000 * i, "---") for i in range(70000)]
    write_core(MappedTarget(regs={1: _registers(0)}, regions=regions), tmp_path / "kmcore", signal=SIGSEGV)
    header = layouts.Elf64_Ehdr.from_buffer_copy((tmp_path / "kmcore").read_bytes()[:64])
    assert header.e_phnum == layouts.PN_XNUM and header.e_shnum == 1
    with CoreTarget(tmp_path / "kmcore") as core:
        assert len(core.mappings()) == 70000


@pytest.mark.parametrize("where, problem", [
    ("missing/kmcore", "No such file or directory"),
    (".", "Is a directory"),
    ("/dev/full", "No space left on device"),
])
def test_an_unwritable_path_raises_one_line_naming_path_and_problem(target, tmp_path, where, problem):
    path = where if where.startswith("/") else tmp_path / where
    with pytest.raises(CoreError) as raised:
        write_core(target, path, signal=SIGSEGV)
    assert str(raised.value) == f"{path}: {problem}"
    assert "\n" not in str(raised.value)


def test_a_full_disk_leaves_no_truncated_core(target, tmp_path, monkeypatch):
    class FillsUp:
        """A file that takes the headers, then runs out of space (ENOSPC) at the first page of memory."""

        def __init__(self, path, mode):
            self.file = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            if self.file.tell() >= 0x1000:
                raise OSError(28, "No space left on device")
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

    monkeypatch.setattr(writer, "open", FillsUp, raising=False)
    path = tmp_path / "kmcore"
    with pytest.raises(CoreError) as raised:
        write_core(target, path, signal=SIGSEGV)
    assert str(raised.value) == f"{path}: No space left on device"
    assert not path.exists()


def test_reading_something_that_is_not_a_core_raises_core_error(tmp_path):
    (tmp_path / "text").write_text("not an ELF file at all, just text" * 10)
    with pytest.raises(CoreError, match="not a readable ELF core file"):
        CoreTarget(tmp_path / "text")
    with pytest.raises(CoreError, match="No such file or directory"):
        CoreTarget(tmp_path / "absent")
    with pytest.raises(CoreError, match="not an x86-64 core file"):
        CoreTarget("/bin/sh" if os.path.exists("/bin/sh") else os.path.realpath("/proc/self/exe"))


def test_the_xstate_note_announces_avx_in_xcr0(target, tmp_path):
    write_core(target, tmp_path / "kmcore", signal=SIGSEGV)
    data = (tmp_path / "kmcore").read_bytes()
    at = data.index(b"LINUX\0\0\0") + 8
    assert struct.unpack_from("<Q", data, at + layouts.XSTATE_XCR0_OFFSET)[0] == x86_64.XCR0
    assert ctypes.sizeof(layouts.elf_prstatus) == 336
