"""StaticTarget: a kdbg.target.Target over plain values; FakeControlTarget: a ControlTarget over plain memory that
behaves as the contract says, for stub tests without a VM; fake_from_elf loads a built payload's segments into one."""
from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from kdbg.arch.x86_64 import zero_registers
from kdbg.target import (SIGTRAP, BreakpointKind, GuestMemoryError, MemoryRegion, NoSuchThreadError, ResumeAction,
                         ResumeKind, StopEvent, StopEventQueue, StopReason)


@dataclass
class StaticTarget:
    """A Target over plain values: for tests of the stub and of the core writer without a VM (kept here, not in
    kdbg.target, so that km's start-up does not build a dataclass only tests use)."""

    regs: dict[int, dict[str, int]]
    memory: dict[int, bytes] = field(default_factory=dict)
    event: StopEvent | None = None
    auxv_data: bytes = b""
    exe: str = ""
    process_id: int = 1

    def threads(self) -> Sequence[int]:
        return sorted(self.regs)

    def thread_name(self, tid: int) -> str:
        return ""

    def registers(self, tid: int) -> dict[str, int]:
        if tid not in self.regs:
            raise NoSuchThreadError(tid)
        return dict(self.regs[tid])

    def read_memory(self, addr: int, size: int) -> bytes:
        for start, data in self.memory.items():
            if start <= addr and addr + size <= start + len(data):
                return data[addr - start: addr - start + size]
        raise GuestMemoryError(addr, size)

    def mappings(self) -> Sequence[MemoryRegion]:
        return [MemoryRegion(s, s + len(d), "rw-") for s, d in sorted(self.memory.items())]

    def auxv(self) -> bytes:
        return self.auxv_data

    def exe_path(self) -> str:
        return self.exe

    def pid(self) -> int:
        return self.process_id

    def stop_event(self, tid: int) -> StopEvent:
        return self.event or StopEvent(tid, StopReason.SIGNAL, SIGTRAP)

    def siginfo(self, tid: int) -> bytes:
        return b""


@dataclass
class FakeControlTarget(StaticTarget):
    """A ControlTarget over plain values that keeps the contract's promises: resume() returns at once and a
    StopEvent follows through event_fd(); interrupt() always yields exactly one event; -g style start posts
    ENTRY; kill() posts TERMINATED; detach() clears every point and runs.

    Behaviour on resume is scripted by `on_resume(target, actions)`, which may post an event; the default
    stops at the first inserted sw/hw breakpoint (rip moved there), reports a step as STEP, and otherwise
    keeps "running" until interrupted."""

    memory: dict[int, bytearray] = field(default_factory=dict)    # writable (M/X packets land here)
    process_id: int = 100
    names: dict[int, str] = field(default_factory=dict)
    features: frozenset[str] = frozenset({"swbreak", "hwbreak", "watch", "step"})
    on_resume: Callable[["FakeControlTarget", Sequence[ResumeAction]], None] | None = None
    children: dict[int, "FakeControlTarget"] = field(default_factory=dict)    # forked_child(pid)

    def __post_init__(self) -> None:
        self._events = StopEventQueue()       # the real targets' plumbing
        weakref.finalize(self, self._events.close)      # fakes are made by the hundred
        self.running = False
        self.points: set[tuple[BreakpointKind, int, int]] = set()
        self.calls: list[tuple] = []          # every control call, for assertions
        self.last_stop: StopEvent | None = None

    # -- event plumbing --
    def post(self, event: StopEvent) -> None:
        self.running = False
        self._events.post(event)

    def event_fd(self) -> int:
        return self._events.read_fd

    def next_event(self) -> StopEvent | None:
        event = self._events.take()
        if event is not None:
            self.last_stop = event
        return event

    # -- Target --
    def thread_name(self, tid: int) -> str:
        return self.names.get(tid, "")

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        for start, data in self.memory.items():
            if start <= addr and addr + size <= start + len(data):
                return data, addr - start
        raise GuestMemoryError(addr, size)

    def read_memory(self, addr: int, size: int) -> bytes:
        data, off = self._find(addr, size)
        return bytes(data[off:off + size])

    def mappings(self) -> Sequence[MemoryRegion]:
        return [MemoryRegion(s, s + len(d), "rwx") for s, d in sorted(self.memory.items())]

    def stop_event(self, tid: int) -> StopEvent:
        return self.last_stop or StopEvent(tid, StopReason.SIGNAL, SIGTRAP)

    def siginfo(self, tid: int) -> bytes:
        stop = self.last_stop
        if stop is None or not stop.signal:
            return b""
        # siginfo_t: si_signo, si_errno, si_code, pad, then the union (si_addr for faults) - 128 bytes.
        code = 128 if stop.reason is StopReason.INTERRUPT else 1   # SI_KERNEL / SEGV_MAPERR-like
        return struct.pack("<iiiiQ", stop.signal, 0, code, 0, 0xDEAD000).ljust(128, b"\0")

    # -- ControlTarget --
    def write_registers(self, tid: int, values) -> None:
        if tid not in self.regs:
            raise NoSuchThreadError(tid)
        self.calls.append(("write_registers", tid, dict(values)))
        self.regs[tid].update(values)

    def write_memory(self, addr: int, data: bytes) -> None:
        buf, off = self._find(addr, len(data))
        self.calls.append(("write_memory", addr, bytes(data)))
        buf[off:off + len(data)] = data

    def resume(self, actions: Sequence[ResumeAction]) -> None:
        self.calls.append(("resume", tuple(actions)))
        self.running = True
        if self.on_resume is not None:
            self.on_resume(self, actions)
            return
        first = self.threads()[0]
        steps = [a for a in actions if a.kind is ResumeKind.STEP]
        if steps:
            tid = steps[0].tid if steps[0].tid > 0 else first
            self.post(StopEvent(tid, StopReason.STEP, SIGTRAP))
            return
        for kind, addr, _ in sorted(self.points):
            if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE) and self.regs[first]["rip"] != addr:
                self.regs[first]["rip"] = addr
                reason = StopReason.BREAKPOINT if kind is BreakpointKind.SOFTWARE else StopReason.HW_BREAKPOINT
                self.post(StopEvent(first, reason, SIGTRAP))
                return

    def interrupt(self) -> None:
        self.calls.append(("interrupt",))
        self.post(StopEvent(self.threads()[0], StopReason.INTERRUPT, 2))

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.calls.append(("set_breakpoint", kind, addr, length))
        self.points.add((kind, addr, length))

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.calls.append(("clear_breakpoint", kind, addr, length))
        self.points.discard((kind, addr, length))

    def supports(self) -> frozenset[str]:
        return self.features

    def report_events(self, kinds: frozenset[str]) -> None:
        self.calls.append(("report_events", kinds))

    def forked_child(self, pid: int) -> "FakeControlTarget":
        child = self.children[pid]
        self.calls.append(("forked_child", pid))
        return child

    def set_syscall_catch(self, numbers: frozenset[int] | None) -> None:
        self.calls.append(("set_syscall_catch", numbers))

    def hand_over(self, state: bytes) -> None:
        self.calls.append(("hand_over", state))

    def detach(self) -> None:
        self.calls.append(("detach",))
        self.points.clear()
        self.running = True

    def kill(self) -> None:
        self.calls.append(("kill",))
        self.post(StopEvent(self.threads()[0], StopReason.TERMINATED, 9))



def elf_segments(path: str | Path) -> tuple[int, dict[int, bytearray]]:
    """(entry, {p_vaddr: bytes}) of an ELF's PT_LOAD segments, zero-filled to p_memsz and page-aligned, the
    way a loader would map them (for fakes that need real code and data)."""
    data = Path(path).read_bytes()
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    segments: dict[int, bytearray] = {}
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type != 1:
            continue
        start = p_vaddr & ~0xFFF
        end = (p_vaddr + p_memsz + 0xFFF) & ~0xFFF
        buf = bytearray(end - start)
        buf[p_vaddr - start:p_vaddr - start + p_filesz] = data[p_offset:p_offset + p_filesz]
        segments[start] = buf
    # Merge segments that share pages (text and data may abut) so reads across them work.
    merged: dict[int, bytearray] = {}
    for start in sorted(segments):
        for mstart, mbuf in merged.items():
            if mstart + len(mbuf) >= start:
                overlap = mstart + len(mbuf) - start
                seg = segments[start]
                for j in range(min(overlap, len(seg))):
                    mbuf[start - mstart + j] |= seg[j]
                mbuf += seg[overlap:]
                break
        else:
            merged[start] = segments[start]
    return entry, merged


STACK_TOP = 0x7FFF_F000_0000
STACK_SIZE = 0x10000


def fake_from_elf(path: str | Path, tids: Sequence[int] = (100,), **kw) -> FakeControlTarget:
    """A stopped 'process' with the ELF's memory, rip at the entry point, a mapped stack, and recognisable
    values in the registers gdb tests look at (xmm0, ymm0h, st0, fs_base)."""
    entry, memory = elf_segments(path)
    memory[STACK_TOP - STACK_SIZE] = bytearray(STACK_SIZE)
    regs = {}
    for n, tid in enumerate(tids):
        r = zero_registers()
        r.update(rip=entry, rsp=STACK_TOP - 0x100 - 0x1000 * n, rbp=0, rax=0x1234 + n, cs=0x33, ss=0x2B,
                 fs_base=0x7000_0000 + n, xmm0=0x00112233445566778899AABBCCDDEEFF,
                 ymm0h=0xFFEEDDCCBBAA99887766554433221100,
                 st0=0x3FFF8000000000000000,                 # 1.0 as an 80-bit extended double
                 fstat=0x3800, ftag=0x3FFF)                  # TOP = 7: st0 is physical register 7, valid
        regs[tid] = r
    return FakeControlTarget(regs=regs, memory=memory, exe=str(path), **kw)
