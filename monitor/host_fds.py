"""km's descriptor policy: km's own descriptors (the VM, vCPUs, mapped files, the stub's sockets) live at and above
KM_FD_BASE, out of the payload's way; the payload's descriptors end below it (what getrlimit(RLIMIT_NOFILE)
answers) and it is refused the range above (EBADF).

The kernel numbers every new descriptor the lowest free one and no call takes another, so what km makes for itself
while the payload runs (a vCPU, a pipe, a memfd, a file it opens) holds a number of the payload's for a moment,
until high_fd moves it. The descriptor gate (GATE) keeps the payload's calls that make, replace or close
descriptors out of that moment: they would take the next number instead of the lowest, or close or replace km's.
"""
from __future__ import annotations

import fcntl
import os
import sys
import threading
from importlib import import_module
from types import ModuleType
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from .kvm.abi import libc
from .syscalls.numbers import NUMBERS

KM_FD_BASE = 1000
CLOSE_RANGE_UNSHARE = 2          # include/uapi/linux/close_range.h
# The longest km waits for the payload's descriptor calls to leave the gate: one blocked inside its call (an open
# of a FIFO with no writer) must not hold km up; the race is then left open for that moment.
GATE_WAIT_S = 0.05
T = TypeVar("T")


def payload_fds() -> list[int]:
    """The payload's open descriptors, ascending: km's host descriptors below KM_FD_BASE (the number of the
    descriptor listdir itself used may be among them, closed again). Without /proc, every possible number."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(KM_FD_BASE))
    return sorted(fd for fd in numbers if fd < KM_FD_BASE)


class DescriptorGate:
    """The payload's descriptor calls pass together (`enter`/`leave`, on the vCPU thread serving one); km's making
    of a descriptor of its own (`km`) waits for them to leave (at most GATE_WAIT_S) and holds new ones off until
    it is done. km's makers do not hold each other off (each moves its own descriptor). No payload call that
    passes the gate makes one of km's (it would wait GATE_WAIT_S for itself): signalfd, which does, does not pass."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Open and empty: at start, and in a forked km, whose other threads (and what they held) are gone."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._payload = 0           # payload calls inside
        self._km = 0                # km makers waiting or inside

    def enter(self) -> None:
        with self._lock:            # (the lock's own __enter__, in C: this is on every open and close)
            while self._km:
                self._cond.wait()
            self._payload += 1

    def leave(self) -> None:
        with self._lock:
            self._payload -= 1
            if self._km and not self._payload:
                self._cond.notify_all()

    @contextmanager
    def km(self) -> Iterator[None]:
        with self._cond:
            self._km += 1
            self._cond.wait_for(lambda: not self._payload, GATE_WAIT_S)
        try:
            yield
        finally:
            with self._cond:
                self._km -= 1
                if not self._km:
                    self._cond.notify_all()


GATE = DescriptorGate()
os.register_at_fork(after_in_child=GATE.reset)      # (the forking thread is in no payload call that passed it)


def payload_made(make: Callable[[], T]) -> T:
    """make() inside the descriptor gate: the one command of a call that makes a descriptor and does not block,
    where the call as a whole may block and so is not gated by its table entry (fcntl's F_DUPFD, ioctl's
    TIOCGPTPEER)."""
    GATE.enter()
    try:
        return make()
    finally:
        GATE.leave()


def lowest_number(fd: int, cloexec: bool) -> int:
    """A descriptor a call that may block made for the payload (accept: it cannot wait at the gate), moved to the
    lowest free number if that is lower: km may have held that one when the call returned. Passes the gate."""
    return payload_made(lambda: _moved_down(fd, cloexec))


def _moved_down(fd: int, cloexec: bool) -> int:
    try:
        lower = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC if cloexec else fcntl.F_DUPFD, 0)
    except OSError:                     # no number free (EMFILE): none lower either
        return fd
    if lower < fd:
        os.close(fd)
        return lower
    os.close(lower)
    return fd


def made_high(make: Callable[[], int]) -> int:
    """make() (a call that makes one descriptor for km) with the descriptor moved to km's range, the payload's
    descriptor calls held off meanwhile."""
    with GATE.km():
        return high_fd(make())


def open_high(path: str) -> int:
    """The file at `path` opened read-only for km (the loader's program, interpreter and scripts), as made_high:
    in km's range, close-on-exec (the exec it may serve closes the payload's close-on-exec descriptors)."""
    return made_high(lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC))


def pipe_high(flags: int = os.O_CLOEXEC) -> tuple[int, int]:
    """os.pipe2(flags) for km, both ends in km's range (close-on-exec), as made_high."""
    with GATE.km():
        read_end, write_end = os.pipe2(flags)
        return high_fd(read_end), high_fd(write_end)


def dup_high(fd: int) -> int:
    """A copy of `fd` for km, at KM_FD_BASE or above (close-on-exec): never the lowest free number, which a
    payload thread opening a file at that moment must get."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, KM_FD_BASE)


def high_fd(fd: int) -> int:
    """Move one of km's descriptors to KM_FD_BASE or above (close-on-exec), so the payload's open/dup2/close
    never meet it."""
    new = dup_high(fd)
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
