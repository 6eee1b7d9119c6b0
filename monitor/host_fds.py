"""km's descriptor policy: km's own descriptors (the VM, vCPUs, mapped files, the stub's sockets) live at and above
KM_FD_BASE, out of the payload's way; the payload's descriptors end below it (what getrlimit(RLIMIT_NOFILE)
answers) and it is refused the range above (EBADF)."""
from __future__ import annotations

import fcntl
import os

KM_FD_BASE = 1000


def payload_fds() -> list[int]:
    """The payload's open descriptors, ascending: km's host descriptors below KM_FD_BASE (the number of the
    descriptor listdir itself used may be among them, closed again). Without /proc, every possible number."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(KM_FD_BASE))
    return sorted(fd for fd in numbers if fd < KM_FD_BASE)


def high_fd(fd: int) -> int:
    """Move one of km's descriptors to KM_FD_BASE or above (close-on-exec), so the payload's open/dup2/close
    never meet it."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, KM_FD_BASE)
    os.close(fd)
    return new
