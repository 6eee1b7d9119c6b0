"""A vCPU and a process as far as monitor.vcpu.loop.VcpuThread uses them, for unit tests of its loop and its
register file without KVM (tests/unit/test_vcpu_register_cache.py, test_vcpu_kick.py, test_syscall_restart.py), and
one whose KVM_RUN is scripted, with a process that can hold a signal pending (test_vcpu_kick.py,
test_vcpu_serve_here.py, test_vcpu_freeze_debugger_run.py)."""
from __future__ import annotations

import struct
import threading
from typing import Callable

from monitor.kvm import abi
from monitor.kvm.abi import ffi
from monitor.vcpu.loop import VcpuThread


class FakeVcpu:
    """A vCPU whose kvm_run is plain memory: what VcpuThread and read_registers touch, no KVM."""

    id = 0

    def __init__(self) -> None:
        self.run = ffi.new("struct kvm_run *")
        self.run_buf = memoryview(ffi.buffer(self.run))
        self.during_read = None        # called from read_registers, between reading the registers and storing them

    def get_sregs(self):
        if self.during_read is not None:
            self.during_read()
        return ffi.new("struct kvm_sregs *")

    def get_xsave(self) -> bytes:
        return bytes(4096)


class FakeProc:
    """What a VcpuThread asks of its process on the register and park paths."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mem = None
        self.freezing = False
        self.xsave_layout: dict[int, int] = {}
        self.error: BaseException | None = None

    def thread_gone(self, thread: VcpuThread) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        self.error = error


class _Debug:
    caught_syscalls = None


class _Signals:
    def __init__(self, proc: KickProc) -> None:
        self.proc = proc

    def deliver(self, thread: VcpuThread) -> None:
        self.proc.pending = False           # the handler's frame would be built here


class KickProc(FakeProc):
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


class ScriptedVcpu(FakeVcpu):
    """KVM_RUN replaced by `script`'s steps, one per run: each sets up the exit the run ends in."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Callable[[], None]] = []
        self.immediate_exit_at_entry: list[int] = []

    def run_once(self) -> int:
        self.immediate_exit_at_entry.append(self.run.immediate_exit)
        self.script.pop(0)()
        return 0


def exit_with(vcpu: FakeVcpu, reason: int, port: int = 0) -> None:
    """The vCPU's kvm_run as a run that ended in exit `reason` (on I/O port `port`) leaves it."""
    struct.pack_into("I", vcpu.run_buf, abi.RUN_EXIT_REASON, reason)
    struct.pack_into("H", vcpu.run_buf, abi.RUN_IO_PORT, port)
