"""Thin typed wrappers over /dev/kvm and VM ioctls; with kvm/vcpu.py the only callers of kvm/ioctl.py."""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ..errors import KvmError, MonitorError
from ..host_fds import high_fd, made_high
from . import abi
from .abi import ffi, libc
from .ioctl import ioctl
from .vcpu import Vcpu

if TYPE_CHECKING:
    from .cpuid import CpuidTable


class Kvm:
    """The /dev/kvm system fd: capability checks, VM creation, supported CPUID."""

    def __init__(self, path: str = os.environ.get("KM_KVM_DEVICE", "/dev/kvm")) -> None:   # hidden test override
        try:
            self.fd = high_fd(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except FileNotFoundError:
            raise MonitorError(path, "no such device (is the kvm module loaded?)") from None
        except PermissionError:
            raise MonitorError(path, "permission denied (add yourself to the kvm group)") from None
        except OSError as e:
            raise MonitorError(path, e.strerror or str(e)) from None
        try:
            version = ioctl(self.fd, abi.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")
        except KvmError as e:
            raise MonitorError(path, f"not a KVM device ({e.problem})") from None
        if version != abi.KVM_API_VERSION:
            raise MonitorError(path, f"unsupported KVM API version {version}")
        for cap, name in ((abi.KVM_CAP_SYNC_REGS, "KVM_CAP_SYNC_REGS"), (abi.KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT")):
            if not self.check_extension(cap):
                raise MonitorError(path, f"{name} is not supported by this kernel")
        self.vcpu_mmap_size = ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")

    def check_extension(self, cap: int) -> int:
        return max(0, libc.ioctl(self.fd, abi.KVM_CHECK_EXTENSION, ffi.cast("void *", cap)))

    def supported_cpuid(self) -> CpuidTable:
        cpuid = ffi.new("struct kvm_cpuid2 *")
        cpuid.nent = 256
        ioctl(self.fd, abi.KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID")
        return cpuid

    def create_vm(self) -> "Vm":
        return Vm(self, high_fd(ioctl(self.fd, abi.KVM_CREATE_VM, 0, "KVM_CREATE_VM")))


class Vm:
    def __init__(self, kvm: Kvm, fd: int) -> None:
        self.kvm, self.fd = kvm, fd
        self.next_slot = 0
        self._slots_lock = threading.Lock()    # a forked km registers slots on two threads (memory/physical.py)

    def add_memory(self, gpa: int, size: int, host_addr: int, readonly: bool = False) -> int:
        """Register a memslot; returns its slot number. Each call takes a slot number of its own, so that two
        threads may register at once (KVM serializes the changes; a refused slot leaves its number unused)."""
        with self._slots_lock:
            slot = self.next_slot
            self.next_slot += 1
        region = ffi.new("struct kvm_userspace_memory_region *")
        region.slot, region.guest_phys_addr, region.memory_size, region.userspace_addr = slot, gpa, size, host_addr
        region.flags = 2 if readonly else 0          # KVM_MEM_READONLY
        ioctl(self.fd, abi.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")
        return slot

    def create_vcpu(self, vcpu_id: int):
        return Vcpu(self, vcpu_id, made_high(lambda: ioctl(self.fd, abi.KVM_CREATE_VCPU, vcpu_id, "KVM_CREATE_VCPU")))
