"""km's descriptor policy: km's own descriptors (the VM, vCPUs, mapped files, the stub's sockets) live at and above
KM_FD_BASE, out of the payload's way; the payload's descriptors end below it (what getrlimit(RLIMIT_NOFILE)
answers) and it is refused the range above (EBADF)."""
from __future__ import annotations

import fcntl
import os

KM_FD_BASE = 1000


def high_fd(fd: int) -> int:
    """Move one of km's descriptors to KM_FD_BASE or above (close-on-exec), so the payload's open/dup2/close
    never meet it."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, KM_FD_BASE)
    os.close(fd)
    return new
