"""The one ioctl() of the KVM wrappers (kvm/vm.py and kvm/vcpu.py call nothing else): cffi, GIL released."""
from __future__ import annotations

from ..errors import KvmError
from .abi import ffi, libc


def ioctl(fd: int, request: int, arg, name: str) -> int:
    """ioctl through cffi (GIL released); raises KvmError naming the call."""
    ret = libc.ioctl(fd, request, arg if isinstance(arg, ffi.CData) else ffi.cast("void *", arg))
    if ret < 0:
        raise KvmError(name, ffi.errno)
    return ret
