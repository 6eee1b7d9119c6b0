"""The register file a parked VcpuThread keeps for the debugger (VcpuThread.stopped_regs) is never served at a
later stop: real VcpuThread and read_registers, a fake vCPU (a kvm_run in plain memory) and a scripted loop in
place of KVM_RUN (the thread "runs" to a new pc and parks as a syscall catchpoint does).

The first case is the race seen once under load: `km -g`'s stub read the entry stop before the vCPU thread had
started, gdb's continue released the thread before it started, and the catchpoint's stop showed the entry pc."""
from __future__ import annotations

import threading

from kdbg.arch.x86_64 import KVM_REGS
from monitor.vcpu.loop import State, VcpuThread
from monitor.vcpu.registers import read_registers, write_registers

from harness.fake_vcpu import FakeProc, FakeVcpu

RIP = KVM_REGS.index("rip")
ENTRY, CATCHPOINT = 0x40102B, 0x403F97
DEADLINE_S = 10.0


def _thread_at_entry() -> tuple[VcpuThread, threading.Event]:
    """A VcpuThread as km -g leaves it before start(): at the entry, a pause requested (LiveTarget.stop_at_entry),
    its loop replaced by: park while asked to, run to CATCHPOINT, park there (VcpuThread.park, as
    on_syscall_entry does). The event is set when it has parked at the catchpoint."""
    thread = VcpuThread(FakeProc(), FakeVcpu(), tid=1)
    thread.regs[RIP] = ENTRY
    thread.pause_requested = True
    caught = threading.Event()

    def scripted_loop() -> None:
        if thread.pause_requested and not thread._service_requests():
            return
        thread.regs[RIP] = CATCHPOINT          # the payload ran (KVM_RUN leaves its registers in the sync regs)
        thread.park(announce=caught.set)

    thread._loop = scripted_loop
    return thread, caught


def _finish(thread: VcpuThread) -> None:
    with thread.cond:
        thread.exit_requested = True
        thread.cond.notify_all()
    assert thread.thread is not None
    thread.thread.join(DEADLINE_S)
    assert not thread.thread.is_alive() and thread.proc.error is None


def test_a_read_before_start_is_not_served_when_released_before_start() -> None:
    thread, caught = _thread_at_entry()
    assert read_registers(thread)["rip"] == ENTRY       # gdb's first `g`, before km started the thread
    thread.release()                                     # gdb's continue, still before
    thread.start()
    assert caught.wait(DEADLINE_S)
    assert read_registers(thread)["rip"] == CATCHPOINT
    _finish(thread)


def test_a_read_that_outlived_its_stop_is_not_stored() -> None:
    """The thread leaves its stop and parks at the next one while a read of the first is under way: the read
    returns what it saw, but the next read sees the new stop (a state check alone takes the new PAUSED for the
    old one)."""
    thread, caught = _thread_at_entry()
    thread.start()
    assert thread.wait_parked(DEADLINE_S) and thread.state is State.PAUSED

    def thread_moves_on() -> None:
        thread.vcpu.during_read = None
        thread.release()
        assert caught.wait(DEADLINE_S)

    thread.vcpu.during_read = thread_moves_on
    assert read_registers(thread)["rip"] == ENTRY
    assert thread.state is State.PAUSED
    assert read_registers(thread)["rip"] == CATCHPOINT
    _finish(thread)


def test_a_parked_thread_reads_the_same_until_a_write_or_its_next_stop() -> None:
    """What the debugger reads of a parked thread: the same values read after read; a register write (the
    debugger's P/G, or km's own change of the sync registers, as a rewound pc) shows in the very next read; after a
    resume, the next stop's registers."""
    thread, caught = _thread_at_entry()
    thread.start()
    assert thread.wait_parked(DEADLINE_S)
    first = dict(read_registers(thread))
    assert first["rip"] == ENTRY and dict(read_registers(thread)) == first
    write_registers(thread, {"rax": 0x1234})
    assert read_registers(thread)["rax"] == 0x1234
    thread.regs[RIP] = ENTRY - 1                # as km rewinds a pc after an int3
    thread.mark_regs_dirty()
    assert read_registers(thread)["rip"] == ENTRY - 1
    assert dict(read_registers(thread)) == dict(first, rax=0x1234, rip=ENTRY - 1)
    thread.release()
    assert caught.wait(DEADLINE_S)
    assert read_registers(thread)["rip"] == CATCHPOINT and read_registers(thread)["rax"] == 0x1234
    _finish(thread)
