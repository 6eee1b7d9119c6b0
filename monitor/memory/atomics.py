"""An atomic compare-and-exchange on guest memory, for the futex words km updates while guest threads run.

Guest threads touch those words natively (glibc unlocks a PI mutex with `lock cmpxchg` in user space), so km
must update them as the kernel does (futex_atomic_cmpxchg_inatomic), never with a plain read-modify-write.
cffi's ABI mode cannot emit a locked instruction and a compiler is not guaranteed at run time, so the seven
bytes of the function are written here by hand into an executable page:
    mov %esi, %eax ; lock cmpxchg %edx, (%rdi) ; ret        -- uint32 cas(uint32 *p, uint32 old, uint32 new)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..kvm import abi
from ..kvm.abi import ffi, libc

if TYPE_CHECKING:
    from .guest import GuestMemory

_CODE = bytes([0x89, 0xF0, 0xF0, 0x0F, 0xB1, 0x17, 0xC3])
_cas = None


def _function():
    global _cas
    if _cas is None:
        page = libc.mmap(ffi.NULL, 4096, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, -1, 0)
        ffi.memmove(page, _CODE, len(_CODE))
        libc.mprotect(page, 4096, abi.PROT_READ | abi.PROT_EXEC)
        _cas = ffi.cast("uint32_t (*)(uint32_t *, uint32_t, uint32_t)", page)
    return _cas


def cas32(mem: GuestMemory, gva: int, expected: int, new: int) -> int:
    """Atomically: if *gva == expected, *gva = new. Returns the value found (== expected on success).
    GuestFault when the word is not writable guest memory."""
    host = mem.host_addr(gva, 4, write=True)
    return _function()(ffi.cast("uint32_t *", host), expected & 0xFFFFFFFF, new & 0xFFFFFFFF)
