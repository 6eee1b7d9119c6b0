"""Freezing a process for a snapshot: every thread parked outside any syscall, at a point it can restart from.

This is the kernel's freezer, not a debugger's stop: a thread blocked in a call leaves it with a restart code
(syscalls/host.py interruption), goes through signal delivery like any interrupted call, finds no handler to run
and is rewound onto its `syscall` instruction (signals.deliver) before it parks, so a resumed copy makes the call
again. A debugger's own pause is left as it was (VcpuThread.freezing is a separate request); a thread stopped by
the debugger inside a blocking call leaves it too. A thread that does not park in time (a call km cannot cut
short) is named in the error and the world is released.
"""
from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING

from ..syscalls.dispatch import NAMES
from ..vcpu.loop import State
from .errors import SnapshotError

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..vcpu.loop import VcpuThread

FREEZE_TIMEOUT_S = 5.0


def freeze(proc: Process, caller: VcpuThread | None, timeout_s: float = FREEZE_TIMEOUT_S) -> None:
    """Every thread but `caller` (the one taking the snapshot from inside) parked outside any syscall; threads
    created meanwhile start frozen. SnapshotError (and everything released) when one does not park in time."""
    proc.freezing = True
    deadline = time.monotonic() + timeout_s
    while True:
        threads = [t for t in proc.live_threads() if t is not caller]
        for thread in threads:
            with thread.cond:
                thread.freezing = True
                thread.cond.notify_all()        # a thread parked in a call by a debugger must leave the call
            thread.kick()
        late = [t for t in threads if not _wait_frozen(t, deadline)]
        if late:
            thaw(proc)
            names = ", ".join(f"thread {t.tid} ({_doing(t)})" for t in late)
            raise SnapshotError("snapshot", f"{names} did not stop within {timeout_s:g} s", errno.EBUSY)
        if all(t in threads or t is caller for t in proc.live_threads()):
            return                              # no thread was created while the others froze


def _doing(thread: VcpuThread) -> str:
    if thread.state == State.IN_SYSCALL:
        return f"in {NAMES.get(thread.orig_rax, thread.orig_rax)}, which km cannot interrupt"
    return thread.state.value


def _wait_frozen(thread: VcpuThread, deadline: float) -> bool:
    with thread.cond:
        return thread.cond.wait_for(thread.is_frozen, max(0.0, deadline - time.monotonic()))


def thaw(proc: Process) -> None:
    """Undo freeze(): threads the debugger holds stay parked, the others go on; the debugger hears that the
    threads it holds may have changed (a call left and rewound)."""
    proc.freezing = False
    for thread in proc.live_threads():
        with thread.cond:
            thread.freezing = False
            thread.cond.notify_all()
    proc.debug.on_thaw()
