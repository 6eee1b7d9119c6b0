"""A snapshot's freeze does not take a thread for frozen while a run the debugger's thread made of it has ended in an
exit that is still to be served (exit_pending: the registers are the `syscall` stub's, and the thread's loop serves
the call before it parks): VcpuThread.is_frozen, as the freeze's wait sees it when the run's end wakes it. Both
ways of making the run: km_debug_run (C; a scripted stand-in returning its status) and the Python twin (a scripted
KVM_RUN). Real VcpuThread over a kvm_run in plain memory."""
from __future__ import annotations


from monitor.kvm import abi
from monitor.syscalls.numbers import NUMBERS
from monitor.vcpu.loop import R11, RAX, RCX, RIP, State, VcpuThread
from monitor.vcpu.machine import KBASE, SYSCALL_PORT

from harness.fake_vcpu import KickProc, ScriptedVcpu, exit_with

BREAKPOINT_VECTOR = 3                       # #BP, as LiveTarget runs a continue


class _SeenAtWake:
    """thread.cond, recording whether the thread counts as frozen each time a waiter is woken."""

    def __init__(self, thread: VcpuThread) -> None:
        self.thread, self.cond, self.frozen = thread, thread.cond, []

    def __enter__(self):
        return self.cond.__enter__()

    def __exit__(self, *exc):
        return self.cond.__exit__(*exc)

    def notify_all(self) -> None:
        self.frozen.append(self.thread.is_frozen())
        self.cond.notify_all()


def _parked_thread() -> tuple[VcpuThread, ScriptedVcpu, _SeenAtWake]:
    proc, vcpu = KickProc(), ScriptedVcpu()
    thread = VcpuThread(proc, vcpu, tid=proc.pid)
    thread.state, thread.pause_requested = State.PAUSED, True       # parked for the debugger
    seen = _SeenAtWake(thread)
    thread.cond = seen                                              # type: ignore[assignment]
    return thread, vcpu, seen


def _syscall_exit_while_a_freeze_begins(thread: VcpuThread, vcpu: ScriptedVcpu) -> None:
    exit_with(vcpu, abi.KVM_EXIT_IO, SYSCALL_PORT)
    regs = thread.regs
    regs[RAX], regs[RCX], regs[R11], regs[RIP] = NUMBERS["getpid"], 0x401002, 0x202, KBASE + 0x8010
    thread.freezing = True                  # freeze() sets it while the vCPU runs


def test_a_run_made_in_c_that_ends_in_a_syscall_exit_is_not_frozen() -> None:
    thread, vcpu, seen = _parked_thread()

    def km_debug_run(*args: object) -> int:
        _syscall_exit_while_a_freeze_begins(thread, vcpu)
        return 0                            # another exit than the vector's, left in kvm_run
    thread._compiled_run = (km_debug_run, 0, 0, 0, 0, [0])
    assert thread.run_for_debugger(BREAKPOINT_VECTOR, False, compiled=object()) is None     # type: ignore[arg-type]
    assert thread.exit_pending and not thread.run_by_debugger
    assert seen.frozen == [False] and not thread.is_frozen()


def test_a_run_made_in_python_that_ends_in_a_syscall_exit_is_not_frozen() -> None:
    thread, vcpu, seen = _parked_thread()
    vcpu.script = [lambda: _syscall_exit_while_a_freeze_begins(thread, vcpu)]
    assert thread.run_for_debugger(BREAKPOINT_VECTOR, False, compiled=None) is None
    assert thread.exit_pending and not thread.run_by_debugger
    assert seen.frozen and not any(seen.frozen) and not thread.is_frozen()
