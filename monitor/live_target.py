"""LiveTarget: kdbg.target.ControlTarget over a running Process (the seam between the GDB stub and the VM).

Calls come from one thread (the stub's). vCPU threads only post events: a vCPU that stops for the debugger
(breakpoint, step, watchpoint, signal) records a StopEvent, parks itself, and the stub thread pauses the others
in next_event() before reporting (all-stop). Breakpoints are int3 bytes km plants and hides from reads (KVM.md
5: debug registers never fire on kvm-pvm, and KVM_GUESTDBG_USE_SW_BP does not intercept a CPL3 int3, so
both software and hardware breakpoints are int3 here); watchpoints are page protection (watchpoints.py).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Mapping, Sequence

from kdbg.target import (BreakpointKind, GuestMemoryError, MemoryRegion, NoSuchThreadError, ResumeAction,
                         ResumeKind, StopEvent, StopReason)
from kdbg.vcpu_control import StopTheWorld

from .errors import GuestFault
from .kvm.vm import high_fd
from .process import Ending
from .signal_frame import make_siginfo
from .thread_registers import read_registers, write_registers
from .kvm import abi
from .vcpu_loop import RFLAGS, RIP, State, TF
from .watchpoints import HANDLED, Watchpoints

log = logging.getLogger("km.gdb")
SIGTRAP, SIGKILL = 5, 9


class LiveTarget:
    def __init__(self, proc, *, stopped_at_entry: bool) -> None:
        self.proc = proc
        self.world = StopTheWorld(proc.live_threads)
        self.breakpoints: dict[int, bytes] = {}          # address -> original byte
        self.watchpoints = Watchpoints(self)
        self.events: collections.deque[StopEvent] = collections.deque()
        self.lock = threading.Lock()
        self._read_fd, self._write_fd = (high_fd(fd) for fd in os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
        self.last_stop: dict[int, StopEvent] = {}
        self.stopped = stopped_at_entry
        self.attached = stopped_at_entry
        self.reported: dict[int, object] = {}             # tid -> PendingSignal shown to gdb
        proc.on_thread_start = self._adopt
        proc.on_end = self._on_end
        proc.mem.on_remap = self.watchpoints.reapply
        for thread in proc.live_threads():
            self._adopt(thread)

    @classmethod
    def snapshot(cls, proc) -> "LiveTarget":
        """A read-only view for the core writer (the process is already stopped)."""
        target = cls.__new__(cls)
        target.proc, target.breakpoints, target.last_stop = proc, {}, {}
        target.watchpoints = None
        return target

    # ---- events from vCPU threads -------------------------------------------------------------------------
    def _adopt(self, thread) -> None:
        thread.on_event = self._on_vcpu_event
        thread.stepping = False
        thread.step_range = None

    def stop_at_entry(self, thread) -> None:
        """km -g: the first thread parks before its first instruction; gdb finds an ENTRY stop."""
        thread.pause_requested = True
        self.stopped = self.attached = True
        self.proc.signals.of(thread).last_info = make_siginfo(SIGTRAP, 0x80)   # as a PTRACE_TRACEME exec stop
        self._post(StopEvent(thread.tid, StopReason.ENTRY, SIGTRAP))

    def _post(self, event: StopEvent) -> None:
        with self.lock:
            self.events.append(event)
        os.write(self._write_fd, b"!")

    def _on_vcpu_event(self, thread, kind: str, info) -> bool:
        """Runs on the vCPU thread. True: the event was the debugger's (the thread parked until resumed)."""
        if kind == "exception":
            vector, error_code = info
            event = self._exception_event(thread, vector, error_code)
        elif kind == "syscall-step":
            if not thread.stepping:
                return False
            if self._in_step_range(thread):
                return True                         # TF is still set (from r11): the next step traps
            thread.regs[RFLAGS] &= ~TF
            thread.stepping = False
            event = StopEvent(thread.tid, StopReason.STEP, SIGTRAP)
        elif kind == "signal":
            if not self.attached or getattr(info, "seen_by_debugger", False):
                return False
            info.seen_by_debugger = True
            self.reported[thread.tid] = info
            event = StopEvent(thread.tid, StopReason.SIGNAL, info.signo)
        else:
            return False
        if event is None:
            return False
        if event is HANDLED:
            return True
        if event.reason is not StopReason.SIGNAL:     # what $_siginfo shows, as Linux would have sent it
            code = {StopReason.BREAKPOINT: 0x80, StopReason.STEP: 2, StopReason.WATCHPOINT: 4}.get(event.reason, 0x80)
            self.proc.signals.of(thread).last_info = make_siginfo(SIGTRAP, code, event.watch_addr or 0)
        self._post(event)
        thread.park()
        return True

    def _exception_event(self, thread, vector: int, error_code: int) -> StopEvent | None:
        regs = thread.regs
        if vector == 3 and regs[RIP] - 1 in self.breakpoints:
            regs[RIP] -= 1
            thread.sync[1] |= abi.KVM_SYNC_X86_REGS
            return StopEvent(thread.tid, StopReason.BREAKPOINT, SIGTRAP)
        if vector == 1 and self.watchpoints.is_stepping(thread):
            return self.watchpoints.after_step(thread)
        if vector == 1 and thread.stepping:
            if self._in_step_range(thread):
                return HANDLED                      # range stepping: no stop until the pc leaves the range
            regs[RFLAGS] &= ~TF
            thread.sync[1] |= abi.KVM_SYNC_X86_REGS
            thread.stepping = False
            return StopEvent(thread.tid, StopReason.STEP, SIGTRAP)
        if vector == 14 and self.watchpoints.owns_fault(thread, error_code):
            return self.watchpoints.on_fault(thread)
        return None

    @staticmethod
    def _in_step_range(thread) -> bool:
        step_range = getattr(thread, "step_range", None)
        return step_range is not None and step_range[0] <= thread.regs[RIP] < step_range[1]

    def _on_end(self, ending) -> None:
        if ending.signal is not None:
            self._post(StopEvent(0, StopReason.TERMINATED, ending.signal))
        else:
            self._post(StopEvent(0, StopReason.EXITED, 0, exit_status=ending.status or 0))

    # ---- Target -------------------------------------------------------------------------------------------
    def _thread(self, tid: int):
        thread = self.proc.threads.get(tid)
        if thread is None or thread.state == State.EXITED:
            raise NoSuchThreadError(tid)
        return thread

    def threads(self) -> Sequence[int]:
        return sorted(t.tid for t in self.proc.live_threads())

    def thread_name(self, tid: int) -> str:
        thread = self.proc.threads.get(tid)
        return thread.name if thread is not None else ""

    def registers(self, tid: int) -> dict[str, int]:
        return read_registers(self._thread(tid))

    def read_memory(self, addr: int, size: int) -> bytes:
        try:
            data = bytearray(self.proc.mem.read_debug(addr, size))
        except GuestFault:
            raise GuestMemoryError(addr, size) from None
        for bp, original in self.breakpoints.items():
            if addr <= bp < addr + size:
                data[bp - addr] = original[0]
        return bytes(data)

    def mappings(self) -> Sequence[MemoryRegion]:
        return [MemoryRegion(v.start, v.end, v.perms(), v.offset, v.path or v.name) for v in self.proc.mem.regions()
                if v.gpa is not None or v.prot]

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

    # ---- ControlTarget ------------------------------------------------------------------------------------
    def write_registers(self, tid: int, values: Mapping[str, int]) -> None:
        write_registers(self._thread(tid), values)

    def write_memory(self, addr: int, data: bytes) -> None:
        data = bytearray(data)
        for bp in self.breakpoints:
            if addr <= bp < addr + len(data):
                self.breakpoints[bp] = bytes([data[bp - addr]])
                data[bp - addr] = 0xCC
        try:
            self.proc.mem.write_debug(addr, bytes(data))
        except GuestFault:
            raise GuestMemoryError(addr, len(data)) from None

    def resume(self, actions: Sequence[ResumeAction]) -> None:
        self.attached = True
        with self.lock:
            stale = list(self.events)
            self.events.clear()
        self._requeue_unreported(stale)
        default = next((a for a in actions if a.tid == -1), None)
        to_release = []
        for thread in self.proc.live_threads():
            action = next((a for a in actions if a.tid == thread.tid), default)
            if action is None or action.kind is ResumeKind.STOP:
                continue
            self._hand_back_signal(thread, action.signal)
            thread.step_range = None
            if action.kind is ResumeKind.STEP:
                thread.stepping = True
                thread.step_range = (action.range_start, action.range_end) if action.range_end else None
                thread.regs[RFLAGS] |= TF
                thread.sync[1] |= abi.KVM_SYNC_X86_REGS
            to_release.append(thread)
        self.stopped = False
        self.world.resume_all(to_release)

    def _hand_back_signal(self, thread, signo: int) -> None:
        """gdb resumes with the signal it was shown (or another): it is delivered; without one, discarded."""
        shown = self.reported.pop(thread.tid, None)
        if not signo:
            return
        from .signals import PendingSignal
        info = shown.info if shown is not None and shown.signo == signo else make_siginfo(signo, 0x80)
        pending = PendingSignal(signo, info)
        pending.seen_by_debugger = True
        with self.proc.signals.lock:
            self.proc.signals.of(thread).pending.insert(0, pending)

    def _requeue_unreported(self, stale: list[StopEvent]) -> None:
        """Events gdb never saw: breakpoints and steps happen again; signals go back to their queue."""
        for event in stale:
            shown = self.reported.pop(event.tid, None) if event.reason is StopReason.SIGNAL else None
            thread = self.proc.threads.get(event.tid)
            if shown is not None and thread is not None:
                shown.seen_by_debugger = False
                with self.proc.signals.lock:
                    self.proc.signals.of(thread).pending.insert(0, shown)

    def interrupt(self) -> None:
        self.attached = True
        if self.stopped or self.proc.ended.is_set():
            tid = next(iter(self.threads()), 0)
            self._post(StopEvent(tid, StopReason.INTERRUPT, 0))
            return
        self.world.pause_all()
        self.stopped = True
        threads = self.threads()
        if threads:
            self._post(StopEvent(threads[0], StopReason.INTERRUPT, 0))

    def event_fd(self) -> int:
        return self._read_fd

    def next_event(self) -> StopEvent | None:
        try:
            os.read(self._read_fd, 1)
        except BlockingIOError:
            pass
        with self.lock:
            if not self.events:
                return None
            event = self.events.popleft()
        if event.reason not in (StopReason.EXITED, StopReason.TERMINATED):
            self.world.pause_all()
            self.stopped = True
            self.last_stop[event.tid] = event
        return event

    def set_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        self.attached = True
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            if addr in self.breakpoints:
                return
            try:
                original = self.proc.mem.read_debug(addr, 1)
                self.proc.mem.write_debug(addr, b"\xcc")
            except GuestFault:
                raise GuestMemoryError(addr, 1) from None
            self.breakpoints[addr] = original
            return
        self.watchpoints.add(kind, addr, length)

    def clear_breakpoint(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if kind in (BreakpointKind.SOFTWARE, BreakpointKind.HARDWARE):
            original = self.breakpoints.pop(addr, None)
            if original is not None:
                try:
                    self.proc.mem.write_debug(addr, original)
                except GuestFault:
                    pass
            return
        self.watchpoints.remove(kind, addr, length)

    def supports(self) -> frozenset[str]:
        return frozenset({"swbreak", "hwbreak", "watch", "step", "range-step", "threads", "auxv", "exec-file",
                          "siginfo", "vfile"})

    def detach(self) -> None:
        for addr in list(self.breakpoints):
            self.clear_breakpoint(BreakpointKind.SOFTWARE, addr, 1)
        self.watchpoints.clear()
        self.attached = False
        for thread in self.proc.live_threads():
            thread.stepping = False
            if thread.regs[RFLAGS] & TF:
                thread.regs[RFLAGS] &= ~TF
                thread.sync[1] |= abi.KVM_SYNC_X86_REGS
        with self.lock:
            stale = list(self.events)
            self.events.clear()
        self._requeue_unreported(stale)
        for tid in list(self.reported):
            self.reported.pop(tid)
        self.stopped = False
        self.world.resume_all()

    def kill(self) -> None:
        self.attached = False
        self.proc.end(Ending(signal=SIGKILL))
        self.world.resume_all()

