"""A vCPU and a process as far as monitor.vcpu.loop.VcpuThread uses them, for unit tests of its loop and its
register file without KVM (tests/unit/test_vcpu_register_cache.py, test_vcpu_kick.py, test_syscall_restart.py)."""
from __future__ import annotations

import threading

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
