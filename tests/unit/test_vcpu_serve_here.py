"""A call served on the debugger's thread (VcpuThread.serve_syscall_here, the quick continue's) leaves the vCPU as
the thread's own loop leaves it (_syscall): the same kvm_run bytes (the return's rip and rflags, rax, the dirty
flags, CS and SS made user segments again when the call entered at CPL0), for a call entered at CPL3 (kvm-pvm) and
one entered at CPL0 (hardware KVM, syscall_at_cpl0: a path this machine's VM never takes). Real VcpuThread over a
kvm_run in plain memory."""
from __future__ import annotations


import pytest

from monitor.kvm import abi
from monitor.syscalls.numbers import NUMBERS
from monitor.vcpu.loop import R11, RAX, RCX, RFLAGS, RIP, VcpuThread
from monitor.vcpu.machine import KBASE, SYSCALL_PORT

from harness.fake_vcpu import FakeVcpu, KickProc, exit_with

RETURN_RIP, USER_RFLAGS = 0x401002, 0x246


def _at_getpid_exit(cpl0: bool) -> VcpuThread:
    """A thread whose vCPU has just made getpid's `syscall` exit: at the CPL0 stub (kernel CS and SS, rip in
    it) when `cpl0`, else at ring 3's."""
    proc = KickProc()
    proc.syscall_at_cpl0 = cpl0
    vcpu = FakeVcpu()
    exit_with(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
    thread = VcpuThread(proc, vcpu, tid=proc.pid)
    regs = thread.regs
    regs[RAX], regs[RCX], regs[R11] = NUMBERS["getpid"], RETURN_RIP, USER_RFLAGS
    regs[RIP] = KBASE + 0x8010 if cpl0 else 0x7FFF0010
    if cpl0:
        sregs = thread.run.s.regs.sregs
        sregs.cs.selector, sregs.cs.dpl, sregs.ss.selector, sregs.ss.dpl = 0x8, 0, 0x10, 0
    return thread


@pytest.mark.parametrize("cpl0", [False, True], ids=["cpl3", "cpl0"])
def test_a_call_served_on_the_debuggers_thread_leaves_the_vcpu_as_its_own_loop(cpl0: bool) -> None:
    own = _at_getpid_exit(cpl0)
    own._syscall(own.regs, own.sync)

    here = _at_getpid_exit(cpl0)
    here.exit_pending = True                # run_for_debugger's run ended in this exit
    assert here.serve_syscall_here()
    assert not here.exit_pending

    assert here.regs[RAX] == own.regs[RAX] == own.proc.pid
    assert here.regs[RIP] == RETURN_RIP and here.regs[RFLAGS] == USER_RFLAGS
    assert bytes(here.vcpu.run_buf) == bytes(own.vcpu.run_buf)
    sregs = here.run.s.regs.sregs
    assert (sregs.cs.dpl, sregs.ss.dpl) == ((3, 3) if cpl0 else (0, 0))
    dirty = here.sync[1]
    assert dirty & abi.KVM_SYNC_X86_REGS and bool(dirty & abi.KVM_SYNC_X86_SREGS) is cpl0
