"""RunDeadline: a POSIX timer that kicks one host thread out of KVM_RUN (EINTR) FIRST_S after it is armed, then
every PERIOD_S until disarmed.

The debugger's thread may make a parked vCPU's KVM_RUN itself for a `continue` (LiveTarget._continue_here): a
breakpoint hit before the first kick then costs no thread hand-off. A payload that runs on past it must not keep
the debugger from gdb's packets (^C): the timer's kick (the stop-the-world signal, whose handler does nothing)
ends the run, and the vCPU's own thread takes over. The timer is periodic so that a kick landing just before
the ioctl enters the guest is followed by another (a kick cannot set immediate_exit at the right moment).
"""
from __future__ import annotations

import signal
import threading

from kdbg.vcpu_control import KICK_SIGNAL

from ..kvm.abi import ffi, libc
from ..syscalls.args import addr_of
from ..syscalls.numbers import NUMBERS
from ..syscalls.time import CLOCK_MONOTONIC

# The first kick comes late enough that arming and disarming do not reprogram the CPU's timer: a timer due before
# the kernel's next tick does, and on this VM that costs an exit to the host (arm + disarm: ~40 us with a 1 ms first
# expiry, ~7 us from ~10 ms on, this RunDeadline timed in a loop on 2026-12-07). A payload running on past it waits that much longer
# before its own thread takes over: still far below what a user at gdb's prompt notices.
FIRST_S = 0.010
PERIOD_S = 0.001
SIGEV_THREAD_ID = 4
_SIGEVENT = "long[8]"       # struct sigevent (64 bytes): sigev_value, then int sigev_signo, sigev_notify, _tid
_ITIMERSPEC = "long[4]"     # it_interval {sec, nsec}, it_value {sec, nsec}


class RunDeadline:
    """One timer per host thread that arms it (created on that thread's first arm). Arming and disarming are one
    raw timer_settime each, with every argument made beforehand (the call's Python around it cost ~10 us)."""

    def __init__(self) -> None:
        self._timer: int | None = None
        # the thread the timer signals: its Thread object, as its ident (pthread_t) is reused once it has ended
        self._owner: threading.Thread | None = None
        self._armed = ffi.new(_ITIMERSPEC, [0, int(PERIOD_S * 1e9), 0, int(FIRST_S * 1e9)])
        self._off = ffi.new(_ITIMERSPEC, [0, 0, 0, 0])
        self._arm_args: tuple[int, ...] = ()     # timer_settime's (number, timer, flags, new value, old, ...)
        self._disarm_args: tuple[int, ...] = ()

    def arm(self) -> bool:
        """Start kicking the calling thread; False when no timer can be made (then do not run the vCPU here)."""
        if self._owner is not threading.current_thread() or self._timer is None:  # (get_native_id: a gettid each)
            if not self._create():
                return False
        return libc.syscall(*self._arm_args) == 0

    def prepare(self) -> None:
        """Make the calling thread's timer now, unarmed (its first arm() would): the stub calls this while it
        waits for gdb, so that gdb's first continue does not pay for timer_create."""
        if self._owner is not threading.current_thread() or self._timer is None:
            self._create()

    def _create(self) -> bool:
        tid = threading.get_native_id()
        self.close()
        if KICK_SIGNAL in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
            return False        # the kick would stay pending: a payload that never exits would keep us
        event = ffi.new(_SIGEVENT)
        words = ffi.cast("int *", event)
        words[2], words[3], words[4] = KICK_SIGNAL, SIGEV_THREAD_ID, tid   # signo, notify, _tid
        timer_id = ffi.new("int *")
        if libc.syscall(NUMBERS["timer_create"], CLOCK_MONOTONIC, addr_of(event), addr_of(timer_id), 0, 0, 0):
            return False
        self._timer, self._owner = timer_id[0], threading.current_thread()
        settime = NUMBERS["timer_settime"]
        self._arm_args = (settime, self._timer, 0, addr_of(self._armed), 0, 0, 0)
        self._disarm_args = (settime, self._timer, 0, addr_of(self._off), 0, 0, 0)
        return True

    def disarm(self) -> None:
        if self._timer is not None:
            libc.syscall(*self._disarm_args)

    def close(self) -> None:
        if self._timer is not None:
            libc.syscall(NUMBERS["timer_delete"], self._timer, 0, 0, 0, 0, 0)
            self._timer = None
