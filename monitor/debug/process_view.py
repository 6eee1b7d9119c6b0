"""ProcessView: kdbg.target.Target (read-only) over a stopped Process, for the core writer and as LiveTarget's base.

Memory reads hide the int3 bytes km planted (proc.breakpoints), so gdb's `x/` and a kmcore both show the
program's real text. The caller guarantees the threads are parked (stop-the-world) while it reads.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from kdbg.target import SIGTRAP, GuestMemoryError, MemoryRegion, NoSuchThreadError, StopEvent, StopReason

from ..errors import GuestFault
from ..vcpu.registers import read_registers
from ..vcpu.loop import RBP, RIP, RSP, State

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..vcpu.loop import VcpuThread


class ProcessView:
    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.last_stop: dict[int, StopEvent] = {}       # tid -> the stop it last reported

    def _thread(self, tid: int) -> VcpuThread:
        thread = self.proc.threads.get(tid)
        if thread is None or thread.state == State.EXITED:
            raise NoSuchThreadError(tid)
        return thread

    def threads(self) -> Sequence[int]:
        return sorted([t.tid for t in self.proc.live_threads()])     # a list, not a generator: one call less

    def thread_name(self, tid: int) -> str:
        """The thread's comm as Linux keeps it: PR_SET_NAME's, else the program's file name (15 bytes), which is
        what gdbserver shows from /proc/PID/task/TID/comm."""
        thread = self.proc.threads.get(tid)
        if thread is None:
            return ""
        return thread.comm.decode(errors="surrogateescape")

    def registers(self, tid: int) -> dict[str, int]:
        return read_registers(self._thread(tid))

    def frame_registers(self, tid: int) -> tuple[int, int, int]:
        """kdbg.target.FrameRegistersTarget: from the sync regs, where read_registers takes them too."""
        regs = self._thread(tid).regs
        return regs[RBP], regs[RSP], regs[RIP]

    def read_memory(self, addr: int, size: int) -> bytes:
        try:
            data = self.proc.mem.read_debug(addr, size)
        except GuestFault:
            raise GuestMemoryError(addr, size) from None
        return self.proc.breakpoints.shadow(addr, data)

    def memory_key(self) -> object:
        """kdbg.target.HostMemoryTarget: the address space (the object: a holder keeps it alive, so an exec's new
        one never passes for it) and its VMA generation (every VMA added, removed or re-backed counts)."""
        return (self.proc.mem, self.proc.mem.generation)

    def host_windows(self) -> Sequence[tuple[int, int, int]]:
        """kdbg.target.HostMemoryTarget: each backed VMA within one host chunk, where read_debug copies it from."""
        mem = self.proc.mem
        windows = []
        with mem.lock:
            for vma in mem.vmas:
                if vma.gpa is None:
                    continue
                chunk = mem.phys.chunk_of(vma.gpa)
                if vma.gpa + (vma.end - vma.start) <= chunk.gpa + chunk.size:
                    windows.append((vma.start, vma.end, chunk.host_addr + vma.gpa - chunk.gpa))
        return windows

    def planted_breakpoints(self) -> Sequence[tuple[int, int]]:
        """kdbg.target.HostMemoryTarget: what read_memory's shadow() puts back."""
        return [(addr, original[0]) for addr, original in self.proc.breakpoints.planted().items()]

    def planted_here(self, changes: Sequence[tuple[bool, int, int]]) -> None:
        """kdbg.target.PlantingTarget: the stop lane's int3s, recorded as set/clear_breakpoint record theirs."""
        breakpoints = self.proc.breakpoints
        for inserted, addr, hidden in changes:
            if inserted:
                breakpoints.adopt(addr, bytes((hidden,)))
            else:
                breakpoints.adopt_removal(addr)

    def mappings(self) -> Sequence[MemoryRegion]:
        return self.proc.mem.mappings(reserved=False)

    def map_generation(self) -> int:
        """Changes whenever a VMA comes or goes (kdbg.link_map.MapGenerations: the library list's cache key)."""
        return self.proc.mem.generation

    def auxv(self) -> bytes:
        return self.proc.auxv

    def exe_path(self) -> str:
        return os.path.abspath(self.proc.path)

    def pid(self) -> int:
        return self.proc.pid

    def stop_event(self, tid: int) -> StopEvent:
        return self.last_stop.get(tid) or StopEvent(tid, StopReason.SIGNAL, SIGTRAP)

    def siginfo(self, tid: int) -> bytes:
        thread = self.proc.threads.get(tid)
        return self.proc.signals.of(thread).last_info if thread is not None else b""
