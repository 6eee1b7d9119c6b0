"""km's descriptor policy: km's own descriptors (the VM, vCPUs, mapped files, the stub's sockets) live at and above
KM_FD_BASE, out of the payload's way; the payload's descriptors end below it (what getrlimit(RLIMIT_NOFILE)
answers) and it is refused the range above (EBADF)."""
from __future__ import annotations

import fcntl
import os
import sys
import threading
from importlib import import_module
from types import ModuleType
from typing import Callable, TypeVar

from .kvm.abi import libc
from .syscalls.numbers import NUMBERS

KM_FD_BASE = 1000
CLOSE_RANGE_UNSHARE = 2          # include/uapi/linux/close_range.h
T = TypeVar("T")


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


def aside(fn: Callable[..., T], *args: object) -> T:
    """fn(*args) on a thread of its own whose descriptor table is its own, holding only stdin, stdout and stderr
    (close_range's CLOSE_RANGE_UNSHARE from 3 on: km's messages and traces still reach stderr): what km opens for
    itself while the payload runs (a late import's files, a /proc read) is numbered there, so it never takes the
    lowest free number from a payload thread opening a file at that moment (Linux always gives that thread the
    lowest). Returns fn's result or raises its exception; only for work that needs none of the process's other
    descriptors (/proc/self still names the process). Where no thread can be started, fn runs on the caller's.
    """
    outcome: list[tuple[bool, T | BaseException]] = []

    def run() -> None:
        try:
            libc.syscall(NUMBERS["close_range"], 3, 0xFFFFFFFF, CLOSE_RANGE_UNSHARE, 0, 0, 0)
            outcome.append((True, fn(*args)))
        except BaseException as e:          # noqa: BLE001 - re-raised on the caller's thread
            outcome.append((False, e))
    thread = threading.Thread(target=run, name="km-aside", daemon=True)
    try:
        thread.start()
    except RuntimeError:                    # no thread to be had (RLIMIT_NPROC, threads-max): the payload's lowest
        return fn(*args)                    # number may be taken a moment, which beats failing its call
    thread.join()
    done, value = outcome[0]
    if not done:
        raise value                         # type: ignore[misc]
    return value                            # type: ignore[return-value]


def late_import(name: str) -> ModuleType:
    """Import `name` (a module km loads on first use while the payload may run) through aside(); once imported,
    the module at once (as the import statement's own fast path: no thread per call of a signalfd read)."""
    module = sys.modules.get(name)
    if module is None or getattr(module.__spec__, "_initializing", False):     # (another thread importing it)
        module = aside(import_module, name)
    return module
