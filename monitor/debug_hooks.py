"""The VMM -> debugger seam: every event a vCPU, the process or guest memory tells a debugger, typed.

The monitor calls `proc.debug.<hook>(...)` on the thread where the event happens; `NoDebugger` (every hook does
nothing, every question answers "not mine") is what a process has until monitor/live_target.py attaches. The
other direction (the debugger driving the VM) is kdbg/target.py's ControlTarget. A hook returning True took the
event: the vCPU thread has parked until the debugger resumed it, and the monitor must not act on it again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .process import Ending, Process
    from .signals import PendingSignal
    from .vcpu_loop import VcpuThread


class DebugHooks(Protocol):
    @property
    def watches_signals(self) -> bool:
        """True: an ignored signal is still queued, so the debugger sees it (Linux's sig_ignored under ptrace)."""

    def on_thread_start(self, thread: VcpuThread) -> None:
        """A new guest thread exists (not running yet)."""

    def on_thread_exit(self, thread: VcpuThread) -> None:
        """A guest thread is gone (its vCPU is about to be reused)."""

    def on_exception(self, thread: VcpuThread, vector: int, error_code: int) -> bool:
        """A CPU exception at CPL3 (int3, #DB, #PF...), before the monitor turns it into a signal."""

    def on_syscall_step(self, thread: VcpuThread) -> bool:
        """A single step over `syscall` finished (SFMASK cleared TF, so no #DB comes)."""

    def on_signal(self, thread: VcpuThread, pending: PendingSignal) -> bool:
        """A signal is about to be delivered to the thread (ptrace's signal-delivery-stop)."""

    def on_remap(self, start: int, end: int) -> None:
        """The page tables of [start, end) were rewritten (mmap, mprotect, mremap): re-protect watched pages."""

    def on_end(self, ending: Ending) -> None:
        """The process ended (exit status or killing signal)."""

    def leave_forked_child(self, proc: Process) -> None:
        """Runs in a forked km on the parent's debugger (a copy that came along with the memory): take back what
        it did to the guest (planted int3s, protected pages), so that the child runs as if never debugged."""


class NoDebugger:
    """A process nobody debugs: every event goes on as if no debugger existed."""

    watches_signals = False

    def on_thread_start(self, thread: VcpuThread) -> None:
        pass

    def on_thread_exit(self, thread: VcpuThread) -> None:
        pass

    def on_exception(self, thread: VcpuThread, vector: int, error_code: int) -> bool:
        return False

    def on_syscall_step(self, thread: VcpuThread) -> bool:
        return False

    def on_signal(self, thread: VcpuThread, pending: PendingSignal) -> bool:
        return False

    def on_remap(self, start: int, end: int) -> None:
        pass

    def on_end(self, ending: Ending) -> None:
        pass

    def leave_forked_child(self, proc: Process) -> None:
        pass


NO_DEBUGGER: DebugHooks = NoDebugger()
