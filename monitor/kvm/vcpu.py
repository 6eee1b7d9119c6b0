"""One KVM vCPU: its fd, its mmap'ed kvm_run, and typed get/set ioctls (each costs ~7 µs on kvm-pvm: the run
loop uses kvm_run's sync regs instead and calls these only for set-up and debugging)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .abi import ffi, libc
from . import abi
from .ioctl import ioctl

if TYPE_CHECKING:
    from .cpuid import CpuidTable


class Vcpu:
    def __init__(self, vm, vcpu_id: int, fd: int) -> None:
        self.vm, self.id, self.fd = vm, vcpu_id, fd
        # libc's mmap, not Python's: mmap.mmap() keeps a dup() of the fd at the lowest free number, where the
        # payload would see (and could close) it
        size = vm.kvm.vcpu_mmap_size
        ptr = libc.mmap(ffi.NULL, size, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED, fd, 0)
        if int(ffi.cast("intptr_t", ptr)) == -1:
            from ..errors import KvmError
            raise KvmError("mmap(kvm_run)", ffi.errno)
        self.run = ffi.cast("struct kvm_run *", ptr)
        self.run_buf = memoryview(ffi.buffer(ptr, size))
        self.run.kvm_valid_regs = abi.KVM_SYNC_X86_REGS | abi.KVM_SYNC_X86_SREGS

    def run_once(self) -> int:
        """KVM_RUN; returns 0, or the errno (EINTR after a kick). Other failures raise."""
        if libc.ioctl(self.fd, abi.KVM_RUN, ffi.NULL) < 0:
            return ffi.errno
        return 0

    def get_regs(self):
        regs = ffi.new("struct kvm_regs *")
        ioctl(self.fd, abi.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs) -> None:
        ioctl(self.fd, abi.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self):
        sregs = ffi.new("struct kvm_sregs *")
        ioctl(self.fd, abi.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs) -> None:
        ioctl(self.fd, abi.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def set_msrs(self, values: dict[int, int]) -> None:
        msrs = ffi.new("struct kvm_msrs *")
        msrs.nmsrs = len(values)
        for i, (index, data) in enumerate(values.items()):
            msrs.entries[i].index, msrs.entries[i].data = index, data
        if ioctl(self.fd, abi.KVM_SET_MSRS, msrs, "KVM_SET_MSRS") != len(values):
            raise abi_error("KVM_SET_MSRS")

    def set_cpuid(self, cpuid: CpuidTable) -> None:
        ioctl(self.fd, abi.KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2")

    def set_xcr0(self, value: int) -> None:
        """XCR0, the state components XSAVE covers and the guest may use (what XSETBV sets on a kernel)."""
        xcrs = ffi.new("struct kvm_xcrs *")
        xcrs.nr_xcrs, xcrs.xcrs[0].xcr, xcrs.xcrs[0].value = 1, 0, value
        ioctl(self.fd, abi.KVM_SET_XCRS, xcrs, "KVM_SET_XCRS")

    def get_xsave(self) -> bytes:
        xsave = ffi.new("struct kvm_xsave *")
        ioctl(self.fd, abi.KVM_GET_XSAVE, xsave, "KVM_GET_XSAVE")
        return bytes(ffi.buffer(xsave))

    def set_xsave(self, image: bytes) -> None:
        xsave = ffi.new("struct kvm_xsave *")
        ffi.memmove(xsave, image, min(len(image), ffi.sizeof(xsave[0])))
        ioctl(self.fd, abi.KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE")


def abi_error(name: str):
    from ..errors import KvmError
    return KvmError(name, 5)
