"""The rekicker (monitor/signals/delivery.py) kicks a thread again while a signal it can take stays pending (a kick
that landed just before a blocking host call is lost), and costs no wake-up of its thread when the signal was
taken: deliver() says so (`taken`) and the timer is disarmed. Real Rekicker and SignalState, fake threads."""
from __future__ import annotations

import signal
import threading
import time

from kdbg.arch.linux import make_siginfo
from monitor.kvm.abi import ffi, libc
from monitor.signals.delivery import NO_SYSCALL, Rekicker, SignalState
from monitor.syscalls.numbers import NUMBERS

DEADLINE_S = 10.0


class _Thread:
    """What the rekicker and deliver() read of a VcpuThread; each kick sets `kicked`."""

    def __init__(self, tid: int = 7) -> None:
        self.tid = tid
        self.exit_requested = self.pause_requested = False
        self.sigwait_set = 0
        self.orig_rax = NO_SYSCALL
        self.kicks = 0
        self.kicked = threading.Event()

    def kick(self) -> None:
        self.kicks += 1
        self.kicked.set()


class _Debug:
    watches_signals = True

    def on_signal(self, thread: _Thread, pending: object) -> bool:
        return True                     # taken by the debugger: no frame to build


class _Proc:
    def __init__(self, thread: _Thread) -> None:
        self.threads = {thread.tid: thread}
        self.pid = thread.tid
        self.debug = _Debug()

    def live_threads(self) -> list[_Thread]:
        return list(self.threads.values())


def _armed_for(rekicker: Rekicker) -> tuple[int, int]:
    """timerfd_gettime's it_value: (0, 0) while disarmed."""
    spec = ffi.new("int64_t[4]")
    assert libc.syscall(NUMBERS["timerfd_gettime"], rekicker.timer, int(ffi.cast("intptr_t", spec)), 0, 0, 0, 0) == 0
    return spec[2], spec[3]


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_a_signal_delivered_disarms_the_rekick() -> None:
    thread = _Thread()
    state = SignalState(_Proc(thread))
    state.send(signal.SIGUSR1, make_siginfo(signal.SIGUSR1, 0, pid=0), thread)
    rekicker = state._rekicker
    assert thread.kicks == 1 and thread.tid in rekicker.watched and _armed_for(rekicker) != (0, 0)
    state.deliver(thread)               # the thread takes it on its way back to the guest
    assert not state.has_pending(thread)
    assert not rekicker.watched and _armed_for(rekicker) == (0, 0)       # nothing left to wake for
    assert rekicker.wakes == 0


def test_a_lost_kick_is_repeated_until_the_signal_is_taken() -> None:
    thread = _Thread()
    state = SignalState(_Proc(thread))
    state.send(signal.SIGUSR1, make_siginfo(signal.SIGUSR1, 0, pid=0), thread)
    # the first kick absorbed before a blocking call, say, and the next ones too: kicked again and again
    _until(lambda: thread.kicks >= 3, "the kick was not repeated while the signal stayed pending")
    state.deliver(thread)
    rekicker = state._rekicker
    _until(lambda: not rekicker.watched, "the thread is still watched after it took the signal")
    assert _armed_for(rekicker) == (0, 0)


def test_a_signal_sent_while_the_last_is_taken_stays_watched() -> None:
    """taken() looks again under its lock: a signal queued since (its kick found the thread watched) is kicked
    again if it is not taken."""
    thread = _Thread()
    state = SignalState(_Proc(thread))
    state.send(signal.SIGUSR1, make_siginfo(signal.SIGUSR1, 0, pid=0), thread)
    state.send(signal.SIGUSR2, make_siginfo(signal.SIGUSR2, 0, pid=0), thread)
    rekicker = state._rekicker
    rekicker.taken(thread)              # as deliver's end would, had SIGUSR2 come after its last look
    assert thread.tid in rekicker.watched and _armed_for(rekicker) != (0, 0)
    thread.kicked.clear()
    assert thread.kicked.wait(DEADLINE_S), "the later signal's kick was not repeated"
