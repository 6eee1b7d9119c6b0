"""Watchpoints without debug registers (they never fire on kvm-pvm, docs/KVM.md 2.2): page protection.

A write watchpoint write-protects its pages (PTE W=0, then the host-side invalidation of docs/KVM.md 6); a read or
access watchpoint makes them not-present. A fault on such a page that the VMA itself allows is ours: the page
gets its real rights back for one single step (RFLAGS.TF) of the faulting instruction; at the #DB the page is
protected again, and if the access touched a watched range the thread stops with a watchpoint event, after the
instruction, as x86 data breakpoints do. gdb compares old and new values itself. While one thread steps
through an unprotected page, another thread's access to it goes unseen (a known gap).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kdbg.arch.linux import PAGE_SIZE as PAGE
from kdbg.target import BreakpointKind, GuestMemoryError, StopEvent, StopReason
from kdbg.tracelog import logger

from ..memory.guest import PROT_WRITE, GuestMemory, pte_flags
from ..memory.page_tables import PTE_W

if TYPE_CHECKING:
    from .live_target import LiveTarget
    from ..vcpu.loop import VcpuThread

log = logger("km.gdb")
HANDLED = object()          # an event the debugger consumed without stopping
ACCESS_WINDOW = 8           # CR2 is the first byte accessed; the width is taken as up to 8 bytes


class Watchpoints:
    def __init__(self, target: LiveTarget) -> None:
        self.target = target
        self.points: dict[tuple[BreakpointKind, int, int], None] = {}
        self.stepping: dict[int, tuple[int, int, bool]] = {}    # tid -> (page, fault address, was a write)

    @property
    def mem(self) -> GuestMemory:
        return self.target.proc.mem

    def _pages(self, addr: int, length: int) -> range:
        return range(addr & ~(PAGE - 1), addr + max(length, 1), PAGE)

    def _page_mode(self, page: int) -> str | None:
        """'absent' when any read/access point covers the page, 'readonly' for write points only, else None."""
        mode = None
        for kind, addr, length in self.points:
            if page in self._pages(addr, length):
                if kind in (BreakpointKind.READ, BreakpointKind.ACCESS):
                    return "absent"
                mode = "readonly"
        return mode

    def _apply(self, page: int, unprotect: bool = False) -> None:
        vma = self.mem.find(page)
        if vma is None or vma.gpa is None or not vma.prot:
            return
        gpa = vma.gpa + page - vma.start
        mode = None if unprotect else self._page_mode(page)
        tables, phys = self.target.proc.tables, self.target.proc.phys
        if mode == "absent":
            tables.set_range(page, PAGE, None)
        elif mode == "readonly":
            tables.set_range(page, PAGE, gpa, pte_flags(vma.prot) & ~PTE_W)
        else:
            tables.set_range(page, PAGE, gpa, pte_flags(vma.prot))
        if mode is not None:
            phys.invalidate(gpa, PAGE)

    def reapply(self, start: int, end: int) -> None:
        """The payload's mprotect/mmap rewrote these PTEs: watched pages in the range get protected again."""
        pages = {p for (_, a, n) in self.points for p in self._pages(a, n) if start <= p < end}
        for page in pages:
            self._apply(page)

    def add(self, kind: BreakpointKind, addr: int, length: int) -> None:
        for page in self._pages(addr, length):
            if self.mem.find(page) is None:
                raise GuestMemoryError(addr, length)
        self.points[(kind, addr, length)] = None
        for page in self._pages(addr, length):
            self._apply(page)

    def remove(self, kind: BreakpointKind, addr: int, length: int) -> None:
        if self.points.pop((kind, addr, length), 1) is None:
            for page in self._pages(addr, length):
                self._apply(page)

    def clear(self) -> None:
        pages = {p for (_, a, n) in self.points for p in self._pages(a, n)}
        self.points.clear()
        for page in pages:
            self._apply(page)

    def owns_fault(self, thread: VcpuThread, error_code: int) -> bool:
        """A #PF on a watched page that the VMA allows: caused by us, not by the payload."""
        if not self.points:
            return False
        cr2 = thread.run.s.regs.sregs.cr2
        page = cr2 & ~(PAGE - 1)
        if self._page_mode(page) is None:
            return False
        vma = self.mem.find(cr2)
        write = bool(error_code & 2)
        return vma is not None and vma.gpa is not None and bool(vma.prot) and (not write or bool(vma.prot & PROT_WRITE))

    def on_fault(self, thread: VcpuThread) -> object:
        cr2 = thread.run.s.regs.sregs.cr2
        page = cr2 & ~(PAGE - 1)
        write = bool(thread.frame()[0] & 2)
        self.stepping[thread.tid] = (page, cr2, write)
        self._apply(page, unprotect=True)
        thread.set_trap_flag(True)
        return HANDLED

    def is_stepping(self, thread: VcpuThread) -> bool:
        return thread.tid in self.stepping

    def after_step(self, thread: VcpuThread) -> StopEvent | object:
        """The #DB after the faulting instruction: a watchpoint stop, the end of gdb's own step, or nothing."""
        page, addr, write = self.stepping.pop(thread.tid)
        self._apply(page)
        debug = self.target.debug_of(thread)
        if not debug.stepping:
            thread.set_trap_flag(False)
        for kind, start, length in self.points:
            if addr < start + length and start < addr + ACCESS_WINDOW:
                if kind == BreakpointKind.WRITE and not write:
                    continue
                if kind == BreakpointKind.READ and write:
                    continue
                debug.stepping = False
                thread.set_trap_flag(False)
                return StopEvent(thread.tid, StopReason.WATCHPOINT, 5, watch_addr=start, watch_kind=kind)
        if debug.stepping:
            debug.stepping = False
            thread.set_trap_flag(False)
            return StopEvent(thread.tid, StopReason.STEP, 5)
        return HANDLED
