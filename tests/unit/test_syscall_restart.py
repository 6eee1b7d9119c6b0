"""The syscall restart is decided from the registers as the kernel does (signals.interrupted_call: orig_rax and rax
as they are now), and orig_rax is a register the debugger reads and writes (vcpu.registers): gdb writes -1 with
the pc before an inferior call at a stop inside an interrupted call, then the saved value back. Real VcpuThread and
register view over a fake vCPU (a kvm_run in plain memory)."""
from __future__ import annotations

from kdbg.arch.linux import MASK64
from kdbg.arch.x86_64 import KVM_REGS
from monitor.signals.delivery import (ERESTART_RESTARTBLOCK, ERESTARTSYS, NO_SYSCALL, NR_RESTART_SYSCALL,
                                      interrupted_call, _restart)
from monitor.vcpu.loop import VcpuThread
from monitor.vcpu.registers import read_registers, write_registers

from harness.fake_vcpu import FakeProc, FakeVcpu

RAX, RIP = KVM_REGS.index("rax"), KVM_REGS.index("rip")
NANOSLEEP, READ = 35, 0


def _thread(orig_rax: int, rax: int) -> VcpuThread:
    thread = VcpuThread(FakeProc(), FakeVcpu(), tid=1)
    thread.orig_rax, thread.regs[RAX], thread.regs[RIP] = orig_rax, rax & MASK64, 0x401002
    return thread


def test_a_call_cut_short_is_read_from_orig_rax_and_rax() -> None:
    assert interrupted_call(_thread(NANOSLEEP, -ERESTART_RESTARTBLOCK)) == -ERESTART_RESTARTBLOCK
    assert interrupted_call(_thread(READ, -ERESTARTSYS)) == -ERESTARTSYS         # read is call number 0
    assert interrupted_call(_thread(READ, -4)) == 0                              # EINTR is a result, not a code
    assert interrupted_call(_thread(NO_SYSCALL, -ERESTARTSYS)) == 0              # an exception's stop: no call


def test_the_debuggers_orig_rax_write_decides_the_restart() -> None:
    thread = _thread(NANOSLEEP, -ERESTART_RESTARTBLOCK)
    assert read_registers(thread)["orig_rax"] == NANOSLEEP
    write_registers(thread, {"orig_rax": MASK64, "rip": 0x401500})              # gdb before `call f()`
    assert thread.orig_rax == NO_SYSCALL and read_registers(thread)["orig_rax"] == MASK64
    assert interrupted_call(thread) == 0
    write_registers(thread, {"orig_rax": NANOSLEEP, "rip": 0x401002})           # gdb's restore afterwards
    restart = interrupted_call(thread)
    _restart(thread, restart)
    assert (thread.regs[RIP], thread.regs[RAX]) == (0x401000, NR_RESTART_SYSCALL)
