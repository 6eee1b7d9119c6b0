"""Snapshots from inside a Python program run by km (the C API is include/km/snapshot.h; the same call).

    from km import snapshots
    if snapshots.take(live=True) == snapshots.RESUMED:
        reconnect()                     # this copy was resumed from the snapshot file

km writes the whole process (`km --snapshot=FILE`, default ./kmsnap) and `km FILE` resumes it later. take()
returns TAKEN in the program that took it (only with live=True: otherwise the program ends once the file is
written) and RESUMED in every copy resumed from the file. OSError when no snapshot was taken: ENOSYS outside km,
EBUSY while another is being written, EINVAL for what km cannot restore (named in km's trace), EIO when the file
could not be written.
"""
from __future__ import annotations

import ctypes
import os

KM_SYSCALL_SNAPSHOT = 0x4B4D00      # km's own call (include/km/snapshot.h)
TAKEN, RESUMED = 0, 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def take(label: str = "", description: str = "", live: bool = False) -> int:
    """Snapshot this process; TAKEN or RESUMED (see the module's docstring)."""
    result = _libc.syscall(ctypes.c_long(KM_SYSCALL_SNAPSHOT), ctypes.c_char_p(label.encode()),
                           ctypes.c_char_p(description.encode()), ctypes.c_long(int(live)))
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"km snapshot: {os.strerror(error)}")
    return result
