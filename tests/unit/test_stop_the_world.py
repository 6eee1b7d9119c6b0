"""kdbg/vcpu_control: every pause is acknowledged, and one that is not names the member that did not park."""
from __future__ import annotations

import threading

import pytest

from kdbg.vcpu_control import PauseTimeout, StopTheWorld


class Member:
    def __init__(self, name: str, parks: bool = True) -> None:
        self.name, self.parks = name, parks
        self.parked = threading.Event()
        self.requested = self.kicked = self.released = 0

    def __str__(self) -> str:
        return self.name

    def request_pause(self) -> None:
        self.requested += 1

    def kick(self) -> None:
        self.kicked += 1
        if self.parks:
            self.parked.set()

    def wait_parked(self, timeout_s: float) -> bool:
        return self.parked.wait(timeout_s)

    def release(self) -> None:
        self.released += 1
        self.parked.clear()


def test_pause_all_requests_kicks_and_waits_for_everyone():
    members = [Member("a"), Member("b")]
    world = StopTheWorld(lambda: members)
    world.pause_all(1.0)
    assert all(m.requested == m.kicked == 1 and m.parked.is_set() for m in members)
    world.resume_all()
    assert all(m.released == 1 for m in members)


def test_a_member_that_does_not_park_is_named_and_the_pause_is_not_complete():
    members = [Member("vCPU 0"), Member("vCPU 1 (thread 7)", parks=False), Member("vCPU 2")]
    world = StopTheWorld(lambda: members)
    with pytest.raises(PauseTimeout) as info:
        world.pause_all(0.05)
    assert info.value.stragglers == [members[1]]
    assert "vCPU 1 (thread 7) did not stop" in str(info.value)


def test_the_caller_can_exclude_its_own_thread():
    me, other = Member("me", parks=False), Member("other")
    StopTheWorld(lambda: [me, other]).pause_all(0.05, exclude=me)
    assert me.requested == 0 and other.parked.is_set()


def test_no_core_is_written_while_a_thread_runs(monkeypatch):
    """Process._dump_core: a straggler means no core (not a torn one), and the reason names the vCPU."""
    from monitor.process import payload as process
    monkeypatch.setattr(process, "CORE_PAUSE_TIMEOUT_S", 0.05)
    proc = process.Process.__new__(process.Process)       # only the two collaborators _dump_core uses
    written = []
    proc.world = StopTheWorld(lambda: [Member("vCPU 1 (thread 7, running)", parks=False)])
    proc.core_writer = lambda view, thread, signo: written.append(signo)
    dumped, why = proc._dump_core(None, 11)
    assert not dumped and not written
    assert why == "vCPU 1 (thread 7, running) did not stop within 0.05 s"
