"""The syscall table: importing this module registers with dispatch.py the families a program's start meets (files,
memory, processes, threads, signals, futexes, time, timers); the rarer ones (sockets, readiness, IPC, ...) register
the first time a call none of those serves is made (load_rest, from dispatch.py's miss path), so a run that never
makes one does not import them (~2 ms of every start)."""
from __future__ import annotations

from . import fs, futex, mm, proc, signal, thread, time, timer  # noqa: F401  (registration by import)
from .dispatch import dispatch, handler_names, syscall  # noqa: F401


def load_rest() -> None:
    """Register the families left out above (dispatch.load_all calls this once)."""
    from . import net, poll, xattr  # noqa: F401  (network, readiness, extended attributes)
    from . import process_vm, residency  # noqa: F401  (memory ranges beyond mm.py)
    from . import snapshot  # noqa: F401  (km's own call)
    from . import descriptors, ipc, notify, paths, process_info  # noqa: F401  (calls beyond the families above)
    from . import signalfd  # noqa: F401  (signals read from a descriptor)
