"""A guest thread's registers as gdb names them (kdbg.arch.x86_64), read from and written to its vCPU.

General registers live in kvm_run's sync regs (no ioctl); fs/gs base in sync sregs once the vCPU has exited at
least once; x87/SSE/AVX only in KVM's XSAVE image, an ioctl each way, so they are fetched on first use.
A parked thread's register file is made once per stop and kept on the thread (VcpuThread.stopped_regs): gdb
asks again after every cache flush, and `info registers` wants the XSAVE part each time. It is dropped when the
thread runs again and by every register write (VcpuThread.mark_regs_dirty, and here for fs/gs base and XSAVE).
It is stored, under the thread's lock, only if the stop it was read at still lasts (VcpuThread.stop_serial):
a state check alone let km -g's entry stop, read before the vCPU thread started and released by gdb's continue
before it started, be served again at the syscall catchpoint the thread parked at next.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from kdbg.arch.linux import MASK64
from kdbg.arch.x86_64 import INTEL_LAYOUT, KVM_REGS, REGISTERS, XsaveLayout, registers_to_xsave, xsave_to_registers

from ..syscalls.dispatch import s64
from .loop import State

if TYPE_CHECKING:
    from ..kvm.cpuid import CpuidTable
    from .loop import VcpuThread

_KVM_INDEX = {name: i for i, name in enumerate(KVM_REGS)}
# what a 64-bit Linux process shows (the VM's own selectors are km's business)
USER_SELECTORS = {"cs": 0x33, "ss": 0x2B, "ds": 0, "es": 0, "fs": 0, "gs": 0}
_FP_NAMES = frozenset(r.name for r in REGISTERS if r.fxsave_offset is not None or r.xsave_offset is not None)


def cpu_xsave_layout(cpuid: CpuidTable) -> XsaveLayout:
    """Where this CPU's standard-format XSAVE image (KVM_GET_XSAVE's) puts each component: CPUID 0xD's
    sub-leaf EBX, from the kvm_cpuid2 the vCPUs get. AMD Zen 4 differs from Intel's (kdbg.arch.x86_64)."""
    layout = {}
    for i in range(cpuid.nent):
        entry = cpuid.entries[i]
        if entry.function == 0xD and entry.index in INTEL_LAYOUT and entry.eax:
            layout[entry.index] = entry.ebx
    return layout


def read_registers(thread: VcpuThread) -> dict[str, int]:
    """The thread's registers; the same (read-only) mapping while it stays parked."""
    cached = thread.stopped_regs
    if cached is not None:
        return cached
    serial, parked = thread.stop_serial, thread.state is State.PAUSED     # read first: a stop may end meanwhile
    regs = dict(zip(KVM_REGS, thread.regs))
    regs.update(USER_SELECTORS)
    sregs = thread.run.s.regs.sregs if thread.has_run else thread.vcpu.get_sregs()
    regs["fs_base"], regs["gs_base"] = sregs.fs.base, sregs.gs.base
    regs["orig_rax"] = thread.orig_rax & MASK64     # Linux's pt_regs orig_ax: the last call's, -1 after an exception
    values = _LazyFpRegisters(regs, thread.vcpu, thread.proc.xsave_layout)
    if parked:                  # a thread blocked in a host call (IN_SYSCALL) may still change rax
        with thread.cond:
            if thread.state is State.PAUSED and thread.stop_serial == serial:
                thread.stopped_regs = values
    return values


def write_registers(thread: VcpuThread, values: Mapping[str, int]) -> None:
    thread.stopped_regs = None
    gprs = thread.user_regs()
    for name, value in values.items():
        if name in _KVM_INDEX:
            gprs[_KVM_INDEX[name]] = value
    thread.set_user_regs(gprs)
    if "orig_rax" in values:    # gdb writes -1 before an inferior call, so that no restart lands in the function
        thread.orig_rax = s64(values["orig_rax"])
    if "fs_base" in values or "gs_base" in values:
        sregs = thread.vcpu.get_sregs()
        sregs.fs.base = values.get("fs_base", sregs.fs.base)
        sregs.gs.base = values.get("gs_base", sregs.gs.base)
        thread.vcpu.set_sregs(sregs)
        sync = thread.run.s.regs.sregs          # a pending sync-sregs write must carry the same bases
        sync.fs.base, sync.gs.base = sregs.fs.base, sregs.gs.base
    fp = {k: v for k, v in values.items() if k in _FP_NAMES}
    if fp:
        image = bytearray(thread.vcpu.get_xsave())
        layout = thread.proc.xsave_layout
        current = xsave_to_registers(bytes(image), layout)
        if any(current.get(k) != v for k, v in fp.items()):
            registers_to_xsave(fp, image, layout)
            thread.vcpu.set_xsave(bytes(image))


class _LazyFpRegisters(dict):
    """A register file whose x87/SSE/AVX part is read (KVM_GET_XSAVE, an ioctl) only when one is asked for:
    a stop reply needs just rip/rsp/rbp."""

    def __init__(self, general: dict[str, int], vcpu, layout: XsaveLayout) -> None:
        super().__init__(general)
        self._vcpu = vcpu
        self._layout = layout

    def _load(self) -> None:
        if self._vcpu is not None:
            vcpu, self._vcpu = self._vcpu, None
            self.update(xsave_to_registers(vcpu.get_xsave(), self._layout))

    def __missing__(self, name: str) -> int:
        self._load()
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (name in _FP_NAMES and self._vcpu is not None)

    def get(self, name: str, default=None):
        if not dict.__contains__(self, name) and name in _FP_NAMES:
            self._load()
        return dict.get(self, name, default)

    def __iter__(self):
        self._load()
        return dict.__iter__(self)

    def items(self):
        self._load()
        return dict.items(self)

    def keys(self):
        self._load()
        return dict.keys(self)

    def values(self):
        self._load()
        return dict.values(self)

    def __len__(self) -> int:
        self._load()
        return dict.__len__(self)

    def copy(self) -> dict[str, int]:
        self._load()
        return dict(self.items())
