"""kdbg/target_link.py: a ControlTarget served over a socket (how the stub reaches a forked child's km)."""
from __future__ import annotations

import select
import socket
import threading

import pytest

from harness.fake_target import FakeControlTarget
from kdbg.arch.x86_64 import zero_registers
from kdbg.target import (BreakpointKind, ControlTarget, GuestMemoryError, NoSuchThreadError, ResumeAction,
                         ResumeKind, StopEvent, StopReason)
from kdbg.target_link import LinkedTarget, serve_target


@pytest.fixture
def linked():
    child = FakeControlTarget(regs={50: dict(zero_registers(), rip=0x401000)}, memory={0x400000: bytearray(64)},
                              process_id=50)
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=serve_target, args=(theirs, child), daemon=True)
    server.start()
    target = LinkedTarget(ours, 50)
    yield child, target
    target.close()
    ours.close()
    server.join(timeout=5)


def wait_event(target: LinkedTarget) -> StopEvent:
    assert select.select([target.event_fd()], [], [], 5)[0], "no event within 5 s"
    event = target.next_event()
    assert event is not None
    return event


def test_calls_reach_the_child_and_answers_come_back(linked):
    child, target = linked
    assert isinstance(target, ControlTarget)
    assert target.pid() == 50 and list(target.threads()) == [50]
    assert target.registers(50)["rip"] == 0x401000
    target.write_memory(0x400010, b"\x90\x90")
    assert target.read_memory(0x400010, 2) == b"\x90\x90"
    target.set_breakpoint(BreakpointKind.SOFTWARE, 0x401000, 1)
    assert (BreakpointKind.SOFTWARE, 0x401000, 1) in child.points


def test_errors_keep_their_type(linked):
    _, target = linked
    with pytest.raises(GuestMemoryError) as info:
        target.read_memory(0x9000, 4)
    assert (info.value.addr, info.value.size) == (0x9000, 4)
    with pytest.raises(NoSuchThreadError):
        target.registers(77)


def test_events_are_forwarded_and_the_end_closes_the_link(linked):
    child, target = linked
    target.resume([ResumeAction(ResumeKind.STEP, 50)])
    assert wait_event(target).reason is StopReason.STEP
    target.kill()
    assert wait_event(target).reason is StopReason.TERMINATED


def test_a_child_that_vanishes_is_reported_killed():
    ours, theirs = socket.socketpair()
    target = LinkedTarget(ours, 60)
    theirs.close()
    assert wait_event(target) == StopEvent(0, StopReason.TERMINATED, 9)
    target.close()
