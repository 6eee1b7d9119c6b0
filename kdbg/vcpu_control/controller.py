"""StopTheWorld: pause every vCPU thread and know that each has parked; release them together.

The kick is a reserved real-time signal whose handler does nothing: in a vCPU thread it makes KVM_RUN (or a
blocking host call) return EINTR, and the thread then sees its pause request (docs/KVM.md section 9). Members are
the monitor's threads, seen only through the Member protocol, so this package knows nothing of KVM.
"""
from __future__ import annotations

import signal
import time
from typing import Callable, Iterable, Protocol, Sequence

KICK_SIGNAL = signal.SIGRTMAX - 1


def _ignore_kick(signum: int, frame: object) -> None:
    """Does nothing: the EINTR the signal causes in the kicked thread is the mechanism."""


def install_kick_handler() -> None:
    """Must run on the main thread (Python installs handlers only there); no SA_RESTART."""
    signal.signal(KICK_SIGNAL, _ignore_kick)
    signal.siginterrupt(KICK_SIGNAL, True)


class Member(Protocol):
    def request_pause(self) -> None: ...

    def kick(self) -> None: ...

    def wait_parked(self, timeout_s: float) -> bool:
        """True once the thread is parked (or blocked in a host call, or gone)."""

    def release(self) -> None: ...


class PauseTimeout(Exception):
    """Some members did not acknowledge a pause in time: the world is NOT stopped (they still hold their pause
    request, so they park as soon as they can). Never report such a stop as complete, never dump a core then."""

    def __init__(self, stragglers: list[Member], timeout_s: float) -> None:
        super().__init__(f"{', '.join(map(str, stragglers))} did not stop within {timeout_s:g} s")
        self.stragglers = stragglers


def pause(members: Sequence[Member], timeout_s: float) -> list[Member]:
    """Request, kick, then wait for each member's acknowledgement within one deadline (every request is out
    before the first wait): the members that did not park in time, in their order."""
    for member in members:
        member.request_pause()
    for member in members:
        member.kick()
    deadline = time.monotonic() + timeout_s
    return [m for m in members if not m.wait_parked(max(0.0, deadline - time.monotonic()))]


class StopTheWorld:
    def __init__(self, members: Callable[[], Iterable[Member]]) -> None:
        self.members = members

    def pause_all(self, timeout_s: float = 5.0, *, exclude: Member | None = None) -> None:
        """Request, kick, then wait for every acknowledgement (but `exclude`'s: the caller's own thread);
        PauseTimeout names the members that did not park in time."""
        stragglers = pause([m for m in self.members() if m is not exclude], timeout_s)
        if stragglers:
            raise PauseTimeout(stragglers, timeout_s)

    def resume_all(self, only: Iterable[Member] | None = None) -> None:
        for member in (self.members() if only is None else only):
            member.release()
