"""A kick is spent where what it was for is taken: after a syscall that a kick (a signal's) came during, the next
KVM_RUN enters the guest (kvm_run.immediate_exit clear) instead of returning at once, an empty run that costs one
VM exit (monitor/vcpu/loop.py _syscall). Real VcpuThread and its loop over a fake vCPU: a kvm_run in plain memory
and a scripted KVM_RUN that records immediate_exit as each run begins."""
from __future__ import annotations


from kdbg.arch.x86_64 import KVM_REGS
from monitor.kvm import abi
from monitor.syscalls.numbers import NUMBERS
from monitor.vcpu.loop import VcpuThread
from monitor.vcpu.machine import SYSCALL_PORT

from harness.fake_vcpu import KickProc, ScriptedVcpu, exit_with

RAX, RCX, R11 = (KVM_REGS.index(n) for n in ("rax", "rcx", "r11"))


def test_a_kick_for_a_signal_taken_at_a_syscalls_exit_leaves_no_empty_run() -> None:
    proc, vcpu = KickProc(), ScriptedVcpu()
    thread = VcpuThread(proc, vcpu, tid=proc.pid)

    def getpid_while_a_signal_comes() -> None:
        exit_with(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
        thread.regs[RAX], thread.regs[RCX], thread.regs[R11] = NUMBERS["getpid"], 0x401002, 0x202
        proc.pending = True                 # queued, then kicked (as SignalState.send), before the call ends
        thread.kick()

    vcpu.script = [getpid_while_a_signal_comes, lambda: exit_with(vcpu, abi.KVM_EXIT_HLT)]
    thread._loop()
    assert proc.unexpected == [abi.KVM_EXIT_HLT] and not proc.pending      # both runs made, the signal taken
    assert thread.regs[RAX] == proc.pid
    assert vcpu.immediate_exit_at_entry == [0, 0]        # the second run enters the guest


def test_a_kick_that_comes_after_the_check_is_kept() -> None:
    """The other side of the clear: a signal sent once the syscall's exit has looked (here: while it is
    delivered) still makes the next run return at once, so the loop finds it."""
    proc, vcpu = KickProc(), ScriptedVcpu()
    thread = VcpuThread(proc, vcpu, tid=proc.pid)
    late = []

    def deliver_and_get_another(thread: VcpuThread) -> None:
        proc.pending = False
        if not late:
            late.append(True)
            thread.kick()                   # another signal's kick, while the first is delivered

    proc.signals.deliver = deliver_and_get_another

    def getpid_while_a_signal_comes() -> None:
        exit_with(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
        thread.regs[RAX], thread.regs[RCX], thread.regs[R11] = NUMBERS["getpid"], 0x401002, 0x202
        proc.pending = True
        thread.kick()

    vcpu.script = [getpid_while_a_signal_comes, lambda: exit_with(vcpu, abi.KVM_EXIT_HLT)]
    thread._loop()
    assert vcpu.immediate_exit_at_entry == [0, 1]
