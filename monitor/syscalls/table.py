"""The complete syscall table: importing this module registers every family's handlers with dispatch.py."""
from __future__ import annotations

from . import fs, futex, mm, proc, signal, thread, time, timer  # noqa: F401  (registration by import)
from . import net, poll, xattr  # noqa: F401  (network, readiness, extended attributes)
from . import process_vm, residency  # noqa: F401  (memory ranges beyond mm.py)
from . import snapshot  # noqa: F401  (km's own call)
from . import descriptors, ipc, notify, paths, process_info  # noqa: F401  (calls beyond the families above)
from . import signalfd  # noqa: F401  (signals read from a descriptor)
from .dispatch import dispatch, handler_names, syscall  # noqa: F401
