"""A kick is spent where what it was for is taken: after a syscall that a kick (a signal's) came during, the next
KVM_RUN enters the guest (kvm_run.immediate_exit clear) instead of returning at once, an empty run that costs one
VM exit (monitor/vcpu/loop.py _syscall). Real VcpuThread and its loop over a fake vCPU: a kvm_run in plain memory
and a scripted KVM_RUN that records immediate_exit as each run begins."""
from __future__ import annotations

import struct
from typing import Callable

from kdbg.arch.x86_64 import KVM_REGS
from monitor.kvm import abi
from monitor.syscalls.numbers import NUMBERS
from monitor.vcpu.loop import VcpuThread
from monitor.vcpu.machine import SYSCALL_PORT

from harness.fake_vcpu import FakeProc, FakeVcpu

RAX, RCX, R11 = (KVM_REGS.index(n) for n in ("rax", "rcx", "r11"))


class _Debug:
    caught_syscalls = None


class _Signals:
    def __init__(self, proc: _KickProc) -> None:
        self.proc = proc

    def deliver(self, thread: VcpuThread) -> None:
        self.proc.pending = False           # the handler's frame would be built here


class _KickProc(FakeProc):
    """What the loop asks of its process on these paths; one signal pending while `pending`."""
    pid = 42
    syscall_at_cpl0 = False

    def __init__(self) -> None:
        super().__init__()
        self.debug = _Debug()
        self.signals = _Signals(self)
        self.pending = False
        self.unexpected: list[int] = []

    def pending_signals_for(self, thread: VcpuThread) -> bool:
        return self.pending

    def deliver_signals(self, thread: VcpuThread) -> None:
        self.signals.deliver(thread)

    def unexpected_exit(self, thread: VcpuThread, reason: int) -> None:
        self.unexpected.append(reason)


class _ScriptedVcpu(FakeVcpu):
    """KVM_RUN replaced by `script`'s steps, one per run: each sets up the exit the run ends in."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Callable[[], None]] = []
        self.immediate_exit_at_entry: list[int] = []

    def run_once(self) -> int:
        self.immediate_exit_at_entry.append(self.run.immediate_exit)
        self.script.pop(0)()
        return 0


def _exit(vcpu: _ScriptedVcpu, reason: int, port: int = 0) -> None:
    struct.pack_into("I", vcpu.run_buf, abi.RUN_EXIT_REASON, reason)
    struct.pack_into("H", vcpu.run_buf, abi.RUN_IO_PORT, port)


def test_a_kick_for_a_signal_taken_at_a_syscalls_exit_leaves_no_empty_run() -> None:
    proc, vcpu = _KickProc(), _ScriptedVcpu()
    thread = VcpuThread(proc, vcpu, tid=proc.pid)

    def getpid_while_a_signal_comes() -> None:
        _exit(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
        thread.regs[RAX], thread.regs[RCX], thread.regs[R11] = NUMBERS["getpid"], 0x401002, 0x202
        proc.pending = True                 # queued, then kicked (as SignalState.send), before the call ends
        thread.kick()

    vcpu.script = [getpid_while_a_signal_comes, lambda: _exit(vcpu, abi.KVM_EXIT_HLT)]
    thread._loop()
    assert proc.unexpected == [abi.KVM_EXIT_HLT] and not proc.pending      # both runs made, the signal taken
    assert thread.regs[RAX] == proc.pid
    assert vcpu.immediate_exit_at_entry == [0, 0]        # the second run enters the guest


def test_a_kick_that_comes_after_the_check_is_kept() -> None:
    """The other side of the clear: a signal sent once the syscall's exit has looked (here: while it is
    delivered) still makes the next run return at once, so the loop finds it."""
    proc, vcpu = _KickProc(), _ScriptedVcpu()
    thread = VcpuThread(proc, vcpu, tid=proc.pid)
    late = []

    def deliver_and_get_another(thread: VcpuThread) -> None:
        proc.pending = False
        if not late:
            late.append(True)
            thread.kick()                   # another signal's kick, while the first is delivered

    proc.signals.deliver = deliver_and_get_another

    def getpid_while_a_signal_comes() -> None:
        _exit(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
        thread.regs[RAX], thread.regs[RCX], thread.regs[R11] = NUMBERS["getpid"], 0x401002, 0x202
        proc.pending = True
        thread.kick()

    vcpu.script = [getpid_while_a_signal_comes, lambda: _exit(vcpu, abi.KVM_EXIT_HLT)]
    thread._loop()
    assert vcpu.immediate_exit_at_entry == [0, 1]
