"""The VMM -> debugger seam: every event a vCPU, the process or guest memory tells a debugger, typed.

The monitor calls `proc.debug.<hook>(...)` on the thread where the event happens; `NoDebugger` (every hook does
nothing, every question answers "not mine") is what a process has until monitor/debug/live_target.py attaches. The
other direction (the debugger driving the VM) is kdbg/target.py's ControlTarget. A hook returning True took the
event: the vCPU thread has parked until the debugger resumed it, and the monitor must not act on it again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import socket

    from ..process.payload import Ending, Process
    from ..signals.delivery import PendingSignal
    from ..vcpu.loop import VcpuThread


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

    def owns_trap_flag(self, thread: VcpuThread) -> bool:
        """RFLAGS.TF is the debugger's (a step it runs), not the program's own (Linux's TIF_FORCED_TF): a call
        entered with it is the debugger's step over the call, and a new thread or forked child does not inherit it."""

    @property
    def caught_syscalls(self) -> frozenset[int] | None:
        """The syscall numbers the debugger stops at (empty: every one); None, the usual case: none, and the
        syscall path asks nothing more."""

    def on_syscall_entry(self, thread: VcpuThread, nr: int) -> None:
        """A caught syscall is about to run (ptrace's syscall-enter-stop); the pc is already past `syscall`."""

    def on_syscall_return(self, thread: VcpuThread, nr: int) -> None:
        """A caught syscall returned, its result in rax (ptrace's syscall-exit-stop)."""

    def on_signal(self, thread: VcpuThread, pending: PendingSignal) -> bool:
        """A signal is about to be delivered to the thread (ptrace's signal-delivery-stop)."""

    def on_remap(self, start: int, end: int) -> None:
        """The page tables of [start, end) were rewritten (mmap, mprotect, mremap): re-protect watched pages."""

    def on_end(self, ending: Ending) -> None:
        """The process ended (exit status or killing signal)."""

    def on_thaw(self) -> None:
        """A snapshot's freeze ended (snapshot/freeze.py): a thread the debugger holds inside a blocking call left
        the call and was rewound onto its `syscall`, so registers read from it since the stop are stale."""

    def fork_link(self, thread: VcpuThread, vfork: bool) -> tuple[socket.socket, socket.socket] | None:
        """Before a fork: a connected pair (parent's end, child's end) when the debugger follows the child, so
        that one session debugs both kms; None leaves the child undebugged."""

    def on_fork(self, thread: VcpuThread, child_pid: int, link: socket.socket, vfork: bool) -> None:
        """After a followed fork, in the parent: the child km is reachable through `link` (a fork event)."""

    def on_vfork_done(self, thread: VcpuThread) -> None:
        """A vfork's child execed or exited, and its parent goes on."""

    def adopt_in_child(self, proc: Process, thread: VcpuThread) -> DebugHooks:
        """In a followed child km, on the parent's debugger copy: the child's own debugger (installed as
        proc.debug), with the thread parked before its first instruction and the parent's points kept."""

    def leave_forked_child(self, proc: Process) -> None:
        """Runs in a forked km on the parent's debugger (a copy that came along with the memory): take back what
        it did to the guest (planted int3s, protected pages), so that the child runs as if never debugged."""

    def before_exec(self, thread: VcpuThread, path: str) -> list[str]:
        """The payload is about to exec `path`: km options that carry the debugging session over to the km that
        runs it (the stub's connection stays open across the exec), or [] when nobody debugs."""

    def exec_failed(self) -> None:
        """The exec did not happen after all (before_exec's session goes on here)."""


class NoDebugger:
    """A process nobody debugs: every event goes on as if no debugger existed."""

    watches_signals = False
    caught_syscalls: frozenset[int] | None = None

    def on_thread_start(self, thread: VcpuThread) -> None:
        pass

    def on_thread_exit(self, thread: VcpuThread) -> None:
        pass

    def on_exception(self, thread: VcpuThread, vector: int, error_code: int) -> bool:
        return False

    def on_syscall_step(self, thread: VcpuThread) -> bool:
        return False

    def owns_trap_flag(self, thread: VcpuThread) -> bool:
        return False

    def on_syscall_entry(self, thread: VcpuThread, nr: int) -> None:
        pass

    def on_syscall_return(self, thread: VcpuThread, nr: int) -> None:
        pass

    def on_signal(self, thread: VcpuThread, pending: PendingSignal) -> bool:
        return False

    def on_remap(self, start: int, end: int) -> None:
        pass

    def on_end(self, ending: Ending) -> None:
        pass

    def on_thaw(self) -> None:
        pass

    def fork_link(self, thread: VcpuThread, vfork: bool) -> tuple[socket.socket, socket.socket] | None:
        return None

    def on_fork(self, thread: VcpuThread, child_pid: int, link: socket.socket, vfork: bool) -> None:
        pass

    def on_vfork_done(self, thread: VcpuThread) -> None:
        pass

    def adopt_in_child(self, proc: Process, thread: VcpuThread) -> DebugHooks:
        return self

    def leave_forked_child(self, proc: Process) -> None:
        pass

    def before_exec(self, thread: VcpuThread, path: str) -> list[str]:
        return []

    def exec_failed(self) -> None:
        pass


NO_DEBUGGER: DebugHooks = NoDebugger()
