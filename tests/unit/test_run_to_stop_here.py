"""LiveTarget._run_to_stop_here: a continue run on the stub's thread serves the calls it meets there only within
the run deadline's first period. A kick that lands while a call is served is spent by its handler and is not
pending at the next KVM_RUN; on hardware KVM a program looping on getpid spends nearly all its time in the
serving, so without a bound of its own the stub's thread could keep the run (and gdb's ^C waiting) indefinitely."""
from __future__ import annotations

import time

from monitor.debug.live_target import LiveTarget
from monitor.vcpu.deadline import FIRST_S


class LoopingOnACall:
    """A thread whose every run ends in a call that may be served here, and whose kicks all land while it is
    served (none ends a run). After GIVE_UP_S it declines, so that a stub thread that never hands over fails the
    test instead of hanging it."""
    GIVE_UP_S = 2.0

    def __init__(self) -> None:
        self.runs = 0
        self.until = time.monotonic() + self.GIVE_UP_S

    def run_for_debugger(self, vector: int, step: bool, compiled: object) -> int | None:
        self.runs += 1
        return None                     # the run ended in a `syscall` exit (exit_pending)

    def serve_syscall_here(self) -> bool:
        return time.monotonic() < self.until


class Target:
    _compiled = None


def test_calls_are_served_here_only_within_the_deadlines_first_period() -> None:
    thread = LoopingOnACall()
    start = time.monotonic()
    assert LiveTarget._run_to_stop_here(Target(), thread) is None       # handed to the vCPU's own thread
    assert FIRST_S <= time.monotonic() - start < LoopingOnACall.GIVE_UP_S / 2
    assert thread.runs > 1                                               # calls were served here meanwhile
