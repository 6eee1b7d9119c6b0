"""kdbg.rsp.rehearsal: the stub's rehearsal of gdb's connect answers every request and changes nothing gdb sees."""
from __future__ import annotations

import os
import struct

import kdbg.rsp.server  # noqa: F401 - registers every handler module
from harness.fake_target import FakeControlTarget
from kdbg.arch.x86_64 import zero_registers
from kdbg.rsp import rehearsal
from kdbg.rsp.commands import dispatch
from kdbg.rsp.session import Inferior, RunState, Session
from kdbg.target import StopEvent, StopReason

TEXT = 0x400000


def _fake() -> FakeControlTarget:
    auxv = struct.pack("<QQQQ", rehearsal.AT_PHDR, TEXT + 0x40, 0, 0)
    return FakeControlTarget(regs={7: dict(zero_registers(), rip=TEXT + 0x10)},
                             memory={TEXT: bytearray(range(256)) * 16}, exe="/bin/payload", auxv_data=auxv)


def test_rehearsal_answers_gdbs_read_only_requests_and_changes_nothing() -> None:
    target = _fake()
    run = RunState(running=False, last_stop=StopEvent(7, StopReason.ENTRY, 5))
    inferior = Inferior(target, run)
    asked = rehearsal.requests(inferior)
    assert b"m400040,38" in asked and b"qAttached:64" in asked
    writes = (b"Z", b"z", b"M", b"X", b"G", b"P", b"vCont;", b"c", b"s", b"C", b"S", b"?", b"D", b"k", b"vKill",
              b"QNonStop", b"QCatchSyscalls", b"qSupported", b"vRun", b"vAttach", b"T")
    assert not [r for r in asked if r.startswith(writes)]
    assert rehearsal.rehearse(inferior, {inferior.pid: inferior}, run) == len(asked)
    assert target.calls == [] and not target.running          # no control call: no write, resume, reporting
    assert run.running is False and run.last_stop.reason is StopReason.ENTRY
    session = Session(target, run, inferiors={inferior.pid: inferior})      # gdb's session starts as before
    assert dispatch(session, b"?").startswith(b"T05") and session.host_files == {}


def test_a_failing_request_is_answered_and_the_rehearsal_goes_on() -> None:
    target = _fake()
    target.auxv_data = b"\x03"          # not whole (key, value) pairs: no program-header reads, still answered
    run = RunState(running=False)
    inferior = Inferior(target, run)

    def broken(addr: int, size: int) -> bytes:
        raise RuntimeError("boom")
    target.read_memory = broken        # type: ignore[method-assign]
    asked = rehearsal.requests(inferior)
    assert b"qXfer:libraries-svr4:read::0,1000" in asked      # reads memory: its handler fails, answers E01
    assert rehearsal.rehearse(inferior, {inferior.pid: inferior}, run) == len(asked)
    assert target.calls == []


def test_a_rehearsal_that_fails_midway_is_swallowed_and_leaks_nothing(monkeypatch, caplog) -> None:
    """A failure outside the handlers (here the framing of one request) ends the rehearsal there: logged, never
    raised, its sockets closed, and gdb's session starts as it would have."""
    target = _fake()
    run = RunState(running=False, last_stop=StopEvent(7, StopReason.ENTRY, 5))
    inferior = Inferior(target, run)
    asked = rehearsal.requests(inferior)
    failing = next(r for r in asked if r.startswith(b"vFile:pread"))       # a host file is open by then
    encode = rehearsal.encode_packet

    def broken(request: bytes) -> bytes:
        if request == failing:
            raise OSError("boom")
        return encode(request)
    monkeypatch.setattr(rehearsal, "encode_packet", broken)
    fds = sorted(os.listdir("/proc/self/fd"))
    assert rehearsal.rehearse(inferior, {inferior.pid: inferior}, run) == asked.index(failing)
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert "connect rehearsal failed" in caplog.text and "boom" in caplog.text
    assert target.calls == [] and run.running is False
    session = Session(target, run, inferiors={inferior.pid: inferior})
    assert dispatch(session, b"?").startswith(b"T05") and session.host_files == {}


class _QuickFake(FakeControlTarget):
    """A target with LiveTarget's quick lane: the rehearsal may prepare it (prepare_quick_resume), never run it."""

    def prepare_quick_resume(self) -> None:
        self.prepared = getattr(self, "prepared", 0) + 1

    def quick_resume(self, step_tid: int):
        raise AssertionError("the rehearsal resumed the payload")


def test_the_rehearsal_prepares_the_first_continue_without_running_it() -> None:
    """km -g: what the first continue made on the stub's thread would make first (its deadline timer, the vCPU run's
    arguments) is made during the rehearsal, on the stub's thread, and nothing runs."""
    fake = _fake()
    target = _QuickFake(regs=fake.regs, memory=fake.memory, exe="/bin/payload", auxv_data=fake.auxv_data)
    run = RunState(running=False, last_stop=StopEvent(7, StopReason.ENTRY, 5))
    inferior = Inferior(target, run)
    assert inferior.quick_resume is not None         # (the session takes it for a QuickResumeTarget)
    assert rehearsal.rehearse(inferior, {inferior.pid: inferior}, run) == len(rehearsal.requests(inferior))
    assert target.prepared == 1 and target.calls == [] and run.running is False
