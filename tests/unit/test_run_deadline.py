"""RunDeadline (monitor/vcpu/deadline.py): the kick that ends a vCPU run the stub's thread makes for a continue.
Checked on a blocking host call of the arming thread, which the kick must cut short as it cuts KVM_RUN short."""
from __future__ import annotations

import errno
import signal
import threading
import time

from kdbg.vcpu_control import KICK_SIGNAL, install_kick_handler
from monitor.kvm.abi import ffi, libc
from monitor.syscalls.numbers import NUMBERS
from monitor.vcpu.deadline import RunDeadline


def _sleep(seconds: int) -> tuple[int, int, float]:
    """nanosleep through cffi (no retry on EINTR, as the KVM_RUN ioctl): (result, errno, seconds taken)."""
    request = ffi.new("long[2]", [seconds, 0])
    start = time.monotonic()
    result = libc.syscall(NUMBERS["nanosleep"], int(ffi.cast("intptr_t", request)), 0, 0, 0, 0, 0)
    return result, ffi.errno, time.monotonic() - start


def test_an_armed_deadline_cuts_a_blocking_call_short_and_a_disarmed_one_does_not() -> None:
    install_kick_handler()
    deadline = RunDeadline()
    try:
        assert deadline.arm()
        result, err, took = _sleep(5)
        deadline.disarm()
        assert (result, err) == (-1, errno.EINTR) and took < 1.0
        time.sleep(0.01)                    # a kick already on its way when disarmed lands here (and is retried)
        request = ffi.new("long[2]", [0, 20_000_000])
        assert libc.syscall(NUMBERS["nanosleep"], int(ffi.cast("intptr_t", request)), 0, 0, 0, 0, 0) == 0
    finally:
        deadline.close()


def test_no_deadline_where_the_kick_is_blocked() -> None:
    """A thread blocking the kick signal would never be kicked out of a run: it does not run one (False)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [KICK_SIGNAL])
    try:
        deadline = RunDeadline()
        assert not deadline.arm()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def test_a_thread_reusing_an_ended_owners_ident_is_kicked_itself() -> None:
    """pthread idents (threading.get_ident) are reused once a thread has ended: a deadline first armed by an
    ended thread, then by a new one with the same ident, must kick the new one (the timer signalled the dead
    thread's tid, and a run made there was never cut short). Threads are started one after another until one
    reuses the first's ident (glibc's stack cache gives it back, mostly at once); the last one checks."""
    install_kick_handler()
    deadline = RunDeadline()
    seen: dict[str, object] = {}

    def first() -> None:
        seen["first"] = threading.get_ident()
        deadline.arm()
        deadline.disarm()

    def later(last: bool) -> None:
        if threading.get_ident() != seen["first"] and not last:
            return
        seen["reused"] = threading.get_ident() == seen["first"]
        assert deadline.arm()
        seen["sleep"] = _sleep(5)
        deadline.disarm()

    try:
        thread = threading.Thread(target=first)
        thread.start()
        thread.join(10)
        for attempt in range(50):
            thread = threading.Thread(target=later, args=(attempt == 49,))
            thread.start()
            thread.join(10)
            if "sleep" in seen:
                break
        result, err, took = seen["sleep"]
        assert (result, err) == (-1, errno.EINTR) and took < 1.0, seen
    finally:
        deadline.close()
